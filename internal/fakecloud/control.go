package fakecloud

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// controlHandler serves the control API under /fakecloud, for people and
// tests driving a standalone fakecloud:
//
//	GET    /fakecloud/vms             list VMs
//	POST   /fakecloud/vms             add a VM: {"id": "42", "name": "web-1", "power": "on"}
//	PATCH  /fakecloud/vms/{id}        {"failNext": "...", "failNextAtOnce": "...", "ignoreShutdown": true, "actionDuration": "30s"}
//	GET    /fakecloud/actions         list actions
//	GET    /fakecloud/peak?vms=a,b    the most actions that ran at once on those VMs (all when omitted), and when
//	GET    /fakecloud/log             the request log, with the choices made
//	DELETE /fakecloud/log             empty it
//	POST   /fakecloud/faults          add a fault (see Fault)
//	DELETE /fakecloud/faults          remove every fault
//	PUT    /fakecloud/ratebudget      {"limit": 250, "window": "1m"}
//	PUT    /fakecloud/actionduration  {"duration": "2s"}
func (c *Cloud) controlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		segs := splitPath(r.URL.EscapedPath())[1:] // drop "fakecloud"
		route := r.Method + " " + strings.Join(segs, "/")
		switch {
		case route == "GET vms":
			writeJSON(w, http.StatusOK, c.VMs())
		case route == "POST vms":
			var in struct {
				ID, Name, Region, Size, Image string
				Power                         Power
			}
			if !readJSON(w, r, &in) {
				return
			}
			if in.ID == "" {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "id is required"})
				return
			}
			c.AddVM(VM{ID: in.ID, Name: in.Name, Region: in.Region, Size: in.Size, Image: in.Image, Power: in.Power})
			vm, _ := c.VM(in.ID)
			writeJSON(w, http.StatusCreated, vm)
		case r.Method == http.MethodPatch && len(segs) == 2 && segs[0] == "vms":
			var in struct {
				FailNext       *string
				FailNextAtOnce *string
				IgnoreShutdown *bool
				ActionDuration string
				Power          Power
			}
			if !readJSON(w, r, &in) {
				return
			}
			var d time.Duration
			if in.ActionDuration != "" {
				var err error
				if d, err = time.ParseDuration(in.ActionDuration); err != nil {
					writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
					return
				}
			}
			err := c.UpdateVM(segs[1], func(vm *VM) {
				if in.FailNext != nil {
					vm.FailNext = *in.FailNext
				}
				if in.FailNextAtOnce != nil {
					vm.FailNextAtOnce = *in.FailNextAtOnce
				}
				if in.IgnoreShutdown != nil {
					vm.IgnoreShutdown = *in.IgnoreShutdown
				}
				if d > 0 {
					vm.ActionDuration = d
				}
				if in.Power != "" {
					vm.Power = in.Power
				}
			})
			if err != nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
				return
			}
			vm, _ := c.VM(segs[1])
			writeJSON(w, http.StatusOK, vm)
		case route == "GET actions":
			writeJSON(w, http.StatusOK, c.Actions())
		case route == "GET peak":
			var keep func(string) bool
			if list := r.URL.Query().Get("vms"); list != "" {
				vms := map[string]bool{}
				for _, id := range strings.Split(list, ",") {
					vms[id] = true
				}
				keep = func(id string) bool { return vms[id] }
			}
			peak, at := c.PeakConcurrent(keep)
			writeJSON(w, http.StatusOK, map[string]any{"peak": peak, "at": at})
		case route == "GET log":
			writeJSON(w, http.StatusOK, c.Log())
		case route == "DELETE log":
			c.ResetLog()
			w.WriteHeader(http.StatusNoContent)
		case route == "POST faults":
			var f Fault
			if !readJSON(w, r, &f) {
				return
			}
			c.InjectFault(f)
			w.WriteHeader(http.StatusCreated)
		case route == "DELETE faults":
			c.ClearFaults()
			w.WriteHeader(http.StatusNoContent)
		case route == "PUT ratebudget":
			var in struct {
				Limit  int
				Window string
			}
			if !readJSON(w, r, &in) {
				return
			}
			win, err := time.ParseDuration(in.Window)
			if err != nil || in.Limit < 1 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "need limit >= 1 and a window like 1m"})
				return
			}
			c.SetRateBudget(RateBudget{Limit: in.Limit, Window: win})
			w.WriteHeader(http.StatusNoContent)
		case route == "PUT actionduration":
			var in struct{ Duration string }
			if !readJSON(w, r, &in) {
				return
			}
			d, err := time.ParseDuration(in.Duration)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			c.SetActionDuration(d)
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such control route: " + route})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeReply(w, jsonReply(status, v))
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
		return false
	}
	return true
}
