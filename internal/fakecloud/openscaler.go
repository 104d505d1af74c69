package fakecloud

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// OpenScaler (PROVIDERS.md "openscaler", seed 004).
//
//	POST /v1/vms/{vm_id}/actions  {"type": start|shutdown|power_off|reboot|reset}
//	GET  /v1/vms/{vm_id}[?only=state]
//	GET  /v1/vms?page=&per_page=  (assumed: the seed copies DigitalOcean's
//	                              wording, so the list is DigitalOcean's
//	                              shape: {"vms": [...], "links", "meta"})
//
// Every call needs "Authorization: Bearer <token>". Actions are synchronous:
// an empty success answer (204; the adversary also answers 200) means the
// action is done. The seed documents no error body;
// this skin assumes {"message": "..."} and these statuses:
//
//	400  malformed body or unknown action type
//	401  missing or wrong token
//	404  unknown VM (or an id that cannot be one)
//	408  shutdown: the guest did not go down within OpenScalerShutdownTimeout;
//	     it may still do so later (the seed also says 500 here: the
//	     adversary answers either)
//	409  another action is still running on the VM (a timed-out shutdown)
//	422  the action cannot run in the VM's state ("VM is not running",
//	     "VM is already running"), or it ran and failed (VM.FailNext): a
//	     definite answer that the VM was left as it was, unlike a 5xx, which
//	     the seed says may come while the VM is still changing
//
// Seconds of real time are compressed: a shutdown that finishes within the
// timeout is answered at once, as are the other actions.

// OpenScalerShutdownTimeout is how long the OpenScaler skin's shutdown waits
// for the guest. A VM whose action duration is longer, or whose guest
// ignores shutdowns, gets a 408 and keeps shutting down (or not) afterwards.
const OpenScalerShutdownTimeout = 5 * time.Second

// osCreatedAt stands in for a creation time, which the shared VM model lacks.
const osCreatedAt = "2024-01-15T09:30:00Z"

var osVMID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,127}$`)

// osVM is the flat VM object. id is a number for numeric ids (the seed's
// example is /v1/vms/23), a string otherwise.
type osVM struct {
	ID        any    `json:"id"`
	Name      string `json:"name"`
	UUID      string `json:"uuid"`
	Region    string `json:"region"`
	Size      string `json:"size"`
	CreatedAt string `json:"created_at"`
	State     string `json:"state,omitempty"`
	// Only in the full view (no ?only=).
	VCPUs    int    `json:"vcpus,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
	DiskGB   int    `json:"disk_gb,omitempty"`
	Image    string `json:"image,omitempty"`
}

type osError struct {
	Message string `json:"message"`
}

func osErr(status int, msg string) reply {
	return jsonReply(status, osError{Message: msg})
}

// serveOpenScaler routes /openscaler/v1/...
func (c *Cloud) serveOpenScaler(w http.ResponseWriter, r *http.Request, segs []string) {
	k := call{skin: "openscaler"}
	var handle func(d *draw) reply
	switch {
	case len(segs) == 2 && segs[0] == "v1" && segs[1] == "vms" && r.Method == http.MethodGet:
		handle = func(d *draw) reply { return c.osListVMs(r, d) }
	case len(segs) == 3 && segs[0] == "v1" && segs[1] == "vms" && r.Method == http.MethodGet:
		k.vmID = segs[2]
		only, hasOnly := r.URL.Query()["only"]
		handle = func(*draw) reply { return c.osGetVM(segs[2], only, hasOnly) }
	case len(segs) == 4 && segs[0] == "v1" && segs[1] == "vms" && segs[3] == "actions" && r.Method == http.MethodPost:
		k.vmID, k.action = segs[2], true
		body := readBody(r)
		handle = func(d *draw) reply { return c.osPostAction(segs[2], body, d) }
	default:
		handle = func(*draw) reply { return osErr(http.StatusNotFound, "Not Found") }
	}
	token := bearer(r)
	c.serve(w, r, k, func(d *draw) reply {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !same(token, c.creds.OpenScalerToken) {
			rep := osErr(http.StatusUnauthorized, "Invalid or expired access token")
			rep.header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			return rep
		}
		return handle(d)
	})
}

func (c *Cloud) osVMLocked(id string) *VM {
	if !osVMID.MatchString(id) {
		return nil
	}
	return c.vmLocked(id)
}

func osNotFound(id string) reply {
	return osErr(http.StatusNotFound, fmt.Sprintf("VM %s not found", id))
}

// osState is the libvirt domain state the API reports. A graceful shutdown
// the guest is acting on shows as libvirt's "shutdown" (being shut down).
func (c *Cloud) osState(vm *VM) string {
	showing := c.showingLocked(vm)
	switch {
	case vm.Power == PowerOff:
		return "shutoff"
	case showing != nil && showing.Type == "shutdown" && !vm.IgnoreShutdown:
		return "shutdown"
	default:
		return "running"
	}
}

func (c *Cloud) osView(vm *VM, full bool) osVM {
	var id any = vm.ID
	if n, err := strconv.ParseInt(vm.ID, 10, 64); err == nil {
		id = n
	}
	sum := sha1.Sum([]byte("openscaler/" + vm.ID))
	v := osVM{ID: id, Name: vm.Name, Region: vm.Region, Size: vm.Size, CreatedAt: osCreatedAt, State: c.osState(vm),
		UUID: fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])}
	if full {
		v.VCPUs, v.MemoryMB, v.DiskGB, v.Image = vm.VCPUs, vm.Memory*1024, vm.Disk, vm.Image
	}
	return v
}

// osListVMs lists VMs a page at a time, in DigitalOcean's list shape, in an
// order nothing documents (by id unless the world says otherwise).
func (c *Cloud) osListVMs(r *http.Request, d *draw) reply {
	c.advanceLocked()
	ids := make([]string, 0, len(c.vms))
	for id := range c.vms {
		if osVMID.MatchString(id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	ids = arrange(ids, c.listOrderLocked(d, "openscaler vms"), c.seedLocked(), func(id string) string { return id })
	page, size := pageParams(r, "page", "per_page")
	out := []osVM{}
	for _, id := range pageOf(ids, page, size) {
		out = append(out, c.osView(c.vms[id], false))
	}
	return jsonReply(http.StatusOK, map[string]any{"vms": out, "links": pageLinksFor(r, len(ids), page, size), "meta": listMeta{Total: len(ids)}})
}

func (c *Cloud) osGetVM(id string, only []string, hasOnly bool) reply {
	vm := c.osVMLocked(id)
	if vm == nil {
		return osNotFound(id)
	}
	if hasOnly && (len(only) != 1 || only[0] != "state") {
		return osErr(http.StatusBadRequest, fmt.Sprintf("unsupported value for only: %q", only))
	}
	return jsonReply(http.StatusOK, c.osView(vm, !hasOnly))
}

func (c *Cloud) osPostAction(id string, body []byte, d *draw) reply {
	vm := c.osVMLocked(id)
	if vm == nil {
		return osNotFound(id)
	}
	var req struct {
		Type string `json:"type"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return osErr(http.StatusBadRequest, "request body is not valid JSON: "+err.Error())
		}
	}
	var effect Effect
	switch req.Type {
	case "start":
		effect = PowerOnEffect
	case "shutdown":
		effect = GracefulOffEffect
	case "power_off":
		effect = HardOffEffect
	case "reboot":
		effect = RebootEffect
	case "reset":
		effect = PowerCycleEffect
	case "":
		return osErr(http.StatusBadRequest, "type is required: one of start, shutdown, power_off, reboot, reset")
	default:
		return osErr(http.StatusBadRequest, fmt.Sprintf("unknown action type %q: expected one of start, shutdown, power_off, reboot, reset", req.Type))
	}

	if vm.Busy() {
		// A hard power_off overtakes a shutdown still in progress, as
		// libvirt's destroy does; anything else waits for it.
		if req.Type != "power_off" || vm.Pending() != "shutdown" {
			return osErr(http.StatusConflict, fmt.Sprintf("VM %s is busy: %s in progress", id, vm.Pending()))
		}
		c.osSupersedeLocked(vm, req.Type)
	}
	if req.Type == "start" && vm.Power == PowerOn {
		return osErr(http.StatusUnprocessableEntity, "VM is already running")
	}
	if req.Type != "start" && vm.Power != PowerOn {
		return osErr(http.StatusUnprocessableEntity, "VM is not running")
	}

	if req.Type == "shutdown" && (vm.IgnoreShutdown || c.durationLocked(vm) > OpenScalerShutdownTimeout) {
		// The API gave up waiting; the guest goes on (or keeps ignoring it).
		c.startLocked("openscaler", vm, req.Type, nil, effect, d)
		status := http.StatusRequestTimeout
		if d.adversarial() && d.oneIn(2) {
			status = http.StatusInternalServerError
		}
		d.note("shutdown timed out: answered %d", status)
		rep := osErr(status, fmt.Sprintf("timed out after %s waiting for VM %s to shut down", OpenScalerShutdownTimeout, id))
		rep.accepted = true
		return rep
	}
	_, err := c.runLocked("openscaler", vm, req.Type, nil, effect)
	if err != nil {
		rep := osErr(http.StatusUnprocessableEntity, err.Error())
		rep.accepted = true
		return rep
	}
	// "An empty success response": 204, or 200 with no body.
	status := http.StatusNoContent
	if d.adversarial() && d.oneIn(2) {
		status = http.StatusOK
	}
	if d.adversarial() {
		d.note("answered %d with no body", status)
	}
	return reply{status: status, header: http.Header{}, accepted: true}
}

// osSupersedeLocked ends the VM's pending action without its effect, because
// another action overtook it.
func (c *Cloud) osSupersedeLocked(vm *VM, by string) {
	a := vm.pending
	a.State, a.Message, a.CompletedAt = ActionErrored, "superseded by "+by, c.now().UTC()
	c.setPendingLocked(vm, nil)
}
