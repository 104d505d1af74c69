package fakecloud

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// CloudsFor wire types (PROVIDERS.md "cloudsfor", seed 002).
//
// Timestamps are whole seconds in UTC ("2015-01-14T16:31:00Z"), as every
// example in the seed shows them. Where the seed is silent this skin
// assumes (docs/fakecloud.md says why):
//   - lists are {"actions": [...]} in an order the seed does not fix (oldest
//     first by default), paginated as DigitalOcean does (page, per_page up
//     to 200, links.pages, meta.total);
//   - errors use a DigitalOcean-like envelope {"id": "...", "message": "..."}:
//     401 unauthorized, 404 not_found, 422 unprocessable_entity (invalid
//     parameters, resize of a running VM, or another action still pending);
//   - VM memory and disk are in GB and vcpus a count, the units resize takes.

// cfAction is a VM actions object. Its id is the VM's id, not an action id.
type cfAction struct {
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	Type         string  `json:"type"`
	StartedAt    string  `json:"started_at"`
	CompletedAt  *string `json:"completed_at"`
	ResourceType string  `json:"resource_type"`
	Region       string  `json:"region"`
}

type cfVM struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Locked bool   `json:"locked"`
	Memory int    `json:"memory"`
	VCPUs  int    `json:"vcpus"`
	Disk   int    `json:"disk"`
	Image  string `json:"image"`
	Region string `json:"region"`
}

type cfError struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// cfTimeFormat is ISO 8601 in whole seconds, in UTC, as the seed shows it;
// cfCompatTimeFormat adds milliseconds (Compat.SubSecondTimes).
const (
	cfTimeFormat       = "2006-01-02T15:04:05Z07:00"
	cfCompatTimeFormat = "2006-01-02T15:04:05.000Z07:00"
)

func (c *Cloud) cfTime(t time.Time) string {
	if c.compat.SubSecondTimes {
		return t.UTC().Format(cfCompatTimeFormat)
	}
	return t.UTC().Format(cfTimeFormat)
}

func cfErr(status int, id, msg string) reply {
	return jsonReply(status, cfError{ID: id, Message: msg})
}

func cfNotFound() reply {
	return cfErr(http.StatusNotFound, "not_found", "The resource you were accessing could not be found.")
}

func cfUnprocessable(msg string) reply {
	return cfErr(http.StatusUnprocessableEntity, "unprocessable_entity", msg)
}

// serveCloudsFor routes /cloudsfor/api/v1/...
func (c *Cloud) serveCloudsFor(w http.ResponseWriter, r *http.Request, segs []string) {
	k := call{skin: "cloudsfor"}
	var handle func(d *draw) reply
	// The seed's text says /api/v1/vms/...; some of its cURL examples drop
	// the /api. Only the text's path is served.
	api := len(segs) >= 3 && segs[0] == "api" && segs[1] == "v1"
	switch {
	case api && len(segs) == 5 && segs[2] == "vms" && segs[4] == "actions" && r.Method == http.MethodPost:
		k.vmID, k.action = segs[3], true
		body, jsonBody := readBody(r), isJSON(r)
		handle = func(d *draw) reply {
			if !jsonBody {
				// The seed's requests all carry Content-Type: application/json.
				return cfErr(http.StatusBadRequest, "bad_request", "Content-Type must be application/json")
			}
			return c.cfPostAction(segs[3], body, d)
		}
	case api && len(segs) == 5 && segs[2] == "vms" && segs[4] == "actions" && r.Method == http.MethodGet:
		k.vmID = segs[3]
		handle = func(d *draw) reply { return c.cfListActions(r, segs[3], d) }
	case api && len(segs) == 4 && segs[2] == "vms" && r.Method == http.MethodGet:
		k.vmID = segs[3]
		handle = func(*draw) reply { return c.cfGetVM(segs[3]) }
	case api && len(segs) == 3 && segs[2] == "actions" && r.Method == http.MethodGet:
		handle = func(d *draw) reply { return c.cfListActions(r, "", d) }
	default:
		handle = func(*draw) reply { return cfNotFound() }
	}
	user, pass, _ := r.BasicAuth()
	c.serve(w, r, k, func(d *draw) reply {
		c.mu.Lock()
		defer c.mu.Unlock()
		// Both compared, so a wrong user and a wrong password look the same.
		userOK, passOK := same(user, c.creds.CloudsForUser), same(pass, c.creds.CloudsForPassword)
		if !userOK || !passOK {
			rep := cfErr(http.StatusUnauthorized, "unauthorized", "Unable to authenticate you")
			rep.header.Set("WWW-Authenticate", `Basic realm="CloudsFor"`)
			return rep
		}
		return handle(d)
	})
}

func (c *Cloud) cfActionJSON(a *Action) cfAction {
	region := ""
	if vm := c.vms[a.VMID]; vm != nil {
		region = vm.Region
	}
	out := cfAction{ID: a.VMID, Status: string(a.State), Type: a.Type, StartedAt: c.cfTime(a.StartedAt),
		ResourceType: "vm", Region: region}
	if a.State != ActionInProgress {
		s := c.cfTime(a.CompletedAt)
		out.CompletedAt = &s
	}
	return out
}

func (c *Cloud) cfGetVM(id string) reply {
	vm := c.vmLocked(id)
	if vm == nil {
		return cfNotFound()
	}
	status := "running"
	if vm.Power == PowerOff {
		status = "stopped"
	}
	return jsonReply(http.StatusOK, map[string]any{"vm": cfVM{ID: vm.ID, Name: vm.Name, Status: status,
		Locked: vm.Locked || c.showingLocked(vm) != nil, Memory: vm.Memory, VCPUs: vm.VCPUs, Disk: vm.Disk, Image: vm.Image, Region: vm.Region}})
}

func (c *Cloud) cfPostAction(id string, body []byte, d *draw) reply {
	vm := c.vmLocked(id)
	if vm == nil {
		return cfNotFound()
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return cfErr(http.StatusBadRequest, "bad_request", "unable to parse request body: "+err.Error())
	}
	typ, _ := req["type"].(string)
	effect, params, msg := cfEffect(typ, req)
	if msg != "" {
		return cfUnprocessable(msg)
	}
	if vm.Busy() {
		return cfUnprocessable("VM already has a pending event.")
	}
	if typ == "resize" && vm.Power != PowerOff {
		return cfUnprocessable("The VM must be powered off prior to resizing.")
	}
	a := c.startLocked("cloudsfor", vm, typ, params, effect, d)
	rep := jsonReply(http.StatusCreated, map[string]any{"action": c.cfActionJSON(a)})
	rep.accepted = true
	return rep
}

// cfEffect validates an action request and returns what it does.
func cfEffect(typ string, req map[string]any) (Effect, map[string]any, string) {
	params := map[string]any{}
	switch typ {
	case "reboot":
		return RebootEffect, params, ""
	case "power_cycle":
		return PowerCycleEffect, params, ""
	case "shutdown":
		return GracefulOffEffect, params, ""
	case "power_off":
		return HardOffEffect, params, ""
	case "power_on":
		return PowerOnEffect, params, ""
	case "password_reset":
		return PasswordResetEffect, params, ""
	case "rename", "snapshot":
		name, _ := req["name"].(string)
		if name == "" {
			return nil, nil, "name is required"
		}
		params["name"] = name
		if typ == "rename" {
			return RenameEffect(name), params, ""
		}
		return SnapshotEffect(name), params, ""
	case "resize":
		sizes, msg := cfResizeSizes(req)
		if msg != "" {
			return nil, nil, msg
		}
		for k, v := range sizes {
			params[k] = v
		}
		return func(vm *VM) error {
			if vm.Power != PowerOff {
				return fmt.Errorf("the VM must be powered off prior to resizing")
			}
			for k, v := range sizes {
				switch k {
				case "ram":
					vm.Memory = v
				case "cpu":
					vm.VCPUs = v
				case "disk":
					vm.Disk = v
				}
			}
			return nil
		}, params, ""
	case "":
		return nil, nil, "type is required"
	default:
		return nil, nil, fmt.Sprintf("%q is not a valid action type", typ)
	}
}

// cfResizeSizes reads a resize: "resource" (ram, disk or cpu) with a numeric
// "size", or "data" with some of cpu, ram, disk; never both forms.
func cfResizeSizes(req map[string]any) (map[string]int, string) {
	_, hasResource := req["resource"]
	_, hasSize := req["size"]
	data, hasData := req["data"]
	switch {
	case hasData && (hasResource || hasSize):
		return nil, "use either resource and size, or data, not both"
	case hasData:
		m, ok := data.(map[string]any)
		if !ok || len(m) == 0 {
			return nil, "data must be an object with some of the keys cpu, ram, disk"
		}
		sizes := map[string]int{}
		for k, v := range m {
			if k != "cpu" && k != "ram" && k != "disk" {
				return nil, fmt.Sprintf("data key %q is not one of cpu, ram, disk", k)
			}
			n, ok := cfCount(v)
			if !ok {
				return nil, fmt.Sprintf("data.%s must be a positive whole number", k)
			}
			sizes[k] = n
		}
		return sizes, ""
	case hasResource || hasSize:
		res, _ := req["resource"].(string)
		if res != "ram" && res != "disk" && res != "cpu" {
			return nil, "resource must be ram, disk or cpu"
		}
		n, ok := cfCount(req["size"])
		if !ok {
			return nil, "size must be a positive whole number (GB for ram and disk, a count for cpu)"
		}
		return map[string]int{res: n}, ""
	default:
		return nil, "resize needs resource and size, or data"
	}
}

func cfCount(v any) (int, bool) {
	f, ok := v.(float64)
	if !ok || f < 1 || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

// cfListActions lists a VM's actions, or the account's (the seed's "global
// actions endpoint"), paginated as DigitalOcean does, in an order the seed
// does not fix.
func (c *Cloud) cfListActions(r *http.Request, vmID string, d *draw) reply {
	if vmID != "" && c.vmLocked(vmID) == nil {
		return cfNotFound()
	}
	all := c.listedLocked(func(a *Action) bool {
		return a.Skin == "cloudsfor" && (vmID == "" || a.VMID == vmID)
	})
	all = arrange(all, c.listOrderLocked(d, "cloudsfor "+r.URL.EscapedPath()), c.seedLocked(), actionKey)
	return jsonReply(http.StatusOK, actionPage(r, all, c.cfActionJSON))
}
