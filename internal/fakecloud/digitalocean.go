package fakecloud

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// DigitalOcean API v2 wire types (PROVIDERS.md, seed 003).

type doRegion struct {
	Name      string   `json:"name"`
	Slug      string   `json:"slug"`
	Sizes     []string `json:"sizes"`
	Available bool     `json:"available"`
	Features  []string `json:"features"`
}

type doAction struct {
	ID           int64    `json:"id"`
	Status       string   `json:"status"`
	Type         string   `json:"type"`
	StartedAt    string   `json:"started_at"`
	CompletedAt  *string  `json:"completed_at"`
	ResourceID   int64    `json:"resource_id"`
	ResourceType string   `json:"resource_type"`
	Region       doRegion `json:"region"`
	RegionSlug   string   `json:"region_slug"`
}

type doError struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

type doDroplet struct {
	ID       int64          `json:"id"`
	Name     string         `json:"name"`
	Memory   int            `json:"memory"`
	VCPUs    int            `json:"vcpus"`
	Disk     int            `json:"disk"`
	Locked   bool           `json:"locked"`
	Status   string         `json:"status"`
	SizeSlug string         `json:"size_slug"`
	Image    map[string]any `json:"image"`
	Kernel   map[string]any `json:"kernel,omitempty"`
	Region   doRegion       `json:"region"`
	Features []string       `json:"features"`
}

var (
	doPositiveInt = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)
	doSizeSlug    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	doWeekdays    = map[string]bool{"SUN": true, "MON": true, "TUE": true, "WED": true, "THU": true, "FRI": true, "SAT": true}
	doHours       = map[float64]bool{0: true, 4: true, 8: true, 12: true, 16: true, 20: true}
)

func doErr(status int, id, msg string) reply {
	return jsonReply(status, doError{ID: id, Message: msg, RequestID: "fake-req"})
}

func doNotFound() reply {
	return doErr(http.StatusNotFound, "not_found", "The resource you were accessing could not be found.")
}

func doUnprocessable(msg string) reply {
	return doErr(http.StatusUnprocessableEntity, "unprocessable_entity", msg)
}

// serveDigitalOcean routes /digitalocean/v2/...
func (c *Cloud) serveDigitalOcean(w http.ResponseWriter, r *http.Request, segs []string) {
	k := call{skin: "digitalocean"}
	var handle func(d *draw) reply
	switch {
	case len(segs) == 2 && segs[0] == "v2" && segs[1] == "account" && r.Method == http.MethodGet:
		handle = func(*draw) reply { return c.doAccount() }
	case len(segs) == 3 && segs[0] == "v2" && segs[1] == "droplets" && r.Method == http.MethodGet:
		k.vmID = segs[2]
		handle = func(*draw) reply { return c.doGetDroplet(segs[2]) }
	case len(segs) == 4 && segs[0] == "v2" && segs[1] == "droplets" && segs[3] == "actions" && r.Method == http.MethodPost:
		k.vmID, k.action = segs[2], true
		body, jsonBody := readBody(r), isJSON(r)
		handle = func(d *draw) reply {
			if !jsonBody {
				// The seed lists Content-Type: application/json as required.
				return doErr(http.StatusBadRequest, "bad_request", "Content-Type must be application/json")
			}
			return c.doPostAction(segs[2], body, d)
		}
	case len(segs) == 4 && segs[0] == "v2" && segs[1] == "droplets" && segs[3] == "actions" && r.Method == http.MethodGet:
		k.vmID = segs[2]
		handle = func(d *draw) reply { return c.doListActions(r, segs[2], d) }
	case len(segs) == 5 && segs[0] == "v2" && segs[1] == "droplets" && segs[3] == "actions" && r.Method == http.MethodGet:
		k.vmID = segs[2]
		handle = func(*draw) reply { return c.doGetAction(segs[2], segs[4]) }
	case len(segs) == 2 && segs[0] == "v2" && segs[1] == "actions" && r.Method == http.MethodGet:
		handle = func(d *draw) reply { return c.doListActions(r, "", d) }
	case len(segs) == 3 && segs[0] == "v2" && segs[1] == "actions" && r.Method == http.MethodGet:
		handle = func(*draw) reply { return c.doGetAction("", segs[2]) }
	default:
		handle = func(*draw) reply { return doNotFound() }
	}
	token := bearer(r)
	c.serve(w, r, k, func(d *draw) reply {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !same(token, c.creds.DigitalOceanToken) {
			rep := doErr(http.StatusUnauthorized, "unauthorized", "Unable to authenticate you")
			return rep
		}
		limit, remaining, reset, ok := c.takeLocked("digitalocean/" + token)
		var rep reply
		if !ok {
			rep = doErr(http.StatusTooManyRequests, "too_many_requests", "API Rate limit exceeded.")
			rep.header.Set("Retry-After", strconv.Itoa(int(max(reset.Sub(c.now()).Round(time.Second)/time.Second, 1))))
		} else {
			rep = handle(d)
		}
		rep.header.Set("Ratelimit-Limit", strconv.Itoa(limit))
		rep.header.Set("Ratelimit-Remaining", strconv.Itoa(remaining))
		rep.header.Set("Ratelimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		return rep
	})
}

func (c *Cloud) doAccount() reply {
	return jsonReply(http.StatusOK, map[string]any{"account": map[string]any{
		"droplet_limit": 25, "email": "demo@example.com", "uuid": "fake-account", "email_verified": true, "status": "active",
	}})
}

func (c *Cloud) doDropletLocked(id string) *VM {
	if !doPositiveInt.MatchString(id) {
		return nil
	}
	return c.vmLocked(id)
}

func (c *Cloud) doGetDroplet(id string) reply {
	vm := c.doDropletLocked(id)
	if vm == nil {
		return doNotFound()
	}
	n, _ := strconv.ParseInt(vm.ID, 10, 64)
	status := "active"
	if vm.Power == PowerOff {
		status = "off"
	}
	var features []string
	for _, f := range []string{"backups", "ipv6"} {
		if vm.Flags[f] {
			features = append(features, f)
		}
	}
	d := doDroplet{ID: n, Name: vm.Name, Memory: vm.Memory * 1024, VCPUs: vm.VCPUs, Disk: vm.Disk,
		Locked: c.showingLocked(vm) != nil, Status: status, SizeSlug: vm.Size, Image: map[string]any{"slug": vm.Image},
		Region: doRegionOf(vm.Region), Features: features}
	if vm.Kernel != 0 {
		d.Kernel = map[string]any{"id": vm.Kernel}
	}
	return jsonReply(http.StatusOK, map[string]any{"droplet": d})
}

func doRegionOf(slug string) doRegion {
	return doRegion{Name: slug, Slug: slug, Sizes: []string{"s-1vcpu-1gb", "s-2vcpu-4gb"}, Available: true, Features: []string{"backups", "ipv6"}}
}

func (c *Cloud) doActionJSON(a *Action) doAction {
	vm := c.vms[a.VMID]
	region := "nyc3"
	if vm != nil {
		region = vm.Region
	}
	n, _ := strconv.ParseInt(a.VMID, 10, 64)
	out := doAction{ID: a.ID, Status: string(a.State), Type: a.Type, StartedAt: a.StartedAt.Format(time.RFC3339),
		ResourceID: n, ResourceType: "droplet", Region: doRegionOf(region), RegionSlug: region}
	if a.State != ActionInProgress {
		s := a.CompletedAt.Format(time.RFC3339)
		out.CompletedAt = &s
	}
	return out
}

func (c *Cloud) doPostAction(id string, body []byte, d *draw) reply {
	vm := c.doDropletLocked(id)
	if vm == nil {
		return doNotFound()
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return doErr(http.StatusBadRequest, "bad_request", "unable to parse request body: "+err.Error())
	}
	typ, _ := req["type"].(string)
	effect, params, msg := doEffect(typ, req)
	if msg != "" {
		return doUnprocessable(msg)
	}
	if vm.Busy() {
		return doUnprocessable("Droplet already has a pending event.")
	}
	a := c.startLocked("digitalocean", vm, typ, params, effect, d)
	rep := jsonReply(http.StatusCreated, map[string]any{"action": c.doActionJSON(a)})
	rep.accepted = true
	return rep
}

// doEffect validates an action request and returns what it does.
func doEffect(typ string, req map[string]any) (Effect, map[string]any, string) {
	params := map[string]any{}
	str := func(k string) (string, bool) { s, ok := req[k].(string); return s, ok && s != "" }
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
	case "enable_ipv6":
		return FlagEffect("ipv6", true), params, ""
	case "disable_backups":
		return FlagEffect("backups", false), params, ""
	case "enable_backups", "change_backup_policy":
		p, present := req["backup_policy"]
		if !present {
			if typ == "change_backup_policy" {
				return nil, nil, "backup_policy is required"
			}
			return FlagEffect("backups", true), params, ""
		}
		policy, ok := p.(map[string]any)
		if !ok {
			return nil, nil, "backup_policy must be an object"
		}
		if msg := doCheckPolicy(policy); msg != "" {
			return nil, nil, msg
		}
		params["backup_policy"] = policy
		return func(vm *VM) error { vm.Flags["backups"] = true; vm.BackupPolicy = policy; return nil }, params, ""
	case "restore":
		img, ok := req["image"].(float64)
		if !ok || img != float64(int64(img)) || img < 1 {
			return nil, nil, "image must be the integer id of a backup of this Droplet"
		}
		params["image"] = int64(img)
		return ReinstallEffect(fmt.Sprintf("backup-%d", int64(img))), params, ""
	case "rebuild":
		var image string
		switch v := req["image"].(type) {
		case float64:
			image = strconv.FormatInt(int64(v), 10)
		case string:
			image = v
		}
		if image == "" {
			return nil, nil, "image is required: an image id or slug"
		}
		params["image"] = image
		return ReinstallEffect(image), params, ""
	case "resize":
		size, ok := str("size")
		if !ok || !doSizeSlug.MatchString(size) {
			return nil, nil, "You specified an invalid size for Droplet resize."
		}
		disk, _ := req["disk"].(bool)
		params["size"], params["disk"] = size, disk
		return func(vm *VM) error {
			if vm.Power != PowerOff {
				return fmt.Errorf("droplet must be powered off to resize")
			}
			vm.Size = size
			return nil
		}, params, ""
	case "rename":
		name, ok := str("name")
		if !ok {
			return nil, nil, "name is required"
		}
		params["name"] = name
		return RenameEffect(name), params, ""
	case "change_kernel":
		k, ok := req["kernel"].(float64)
		if !ok || k < 1 || k != float64(int64(k)) {
			return nil, nil, "kernel must be an integer kernel id"
		}
		params["kernel"] = int64(k)
		return func(vm *VM) error { vm.Kernel = int64(k); return nil }, params, ""
	case "snapshot":
		name, _ := str("name")
		if name == "" {
			name = "snapshot-" + time.Now().UTC().Format("20060102150405")
		}
		params["name"] = name
		return SnapshotEffect(name), params, ""
	case "":
		return nil, nil, "type is required"
	default:
		return nil, nil, fmt.Sprintf("%q is not a valid action type", typ)
	}
}

func doCheckPolicy(p map[string]any) string {
	plan, _ := p["plan"].(string)
	switch plan {
	case "daily":
		// godo sends "weekday": "" with a daily plan, so empty counts as absent.
		if wd, _ := p["weekday"].(string); wd != "" {
			return "backup_policy.weekday is only valid for a weekly plan"
		}
	case "weekly":
		wd, _ := p["weekday"].(string)
		if !doWeekdays[wd] {
			return "backup_policy.weekday must be one of SUN, MON, TUE, WED, THU, FRI, SAT"
		}
	default:
		return "backup_policy.plan must be daily or weekly"
	}
	if h, ok := p["hour"]; ok {
		f, isNum := h.(float64)
		if !isNum || !doHours[f] {
			return "backup_policy.hour must be one of 0, 4, 8, 12, 16, 20"
		}
	}
	return ""
}

func (c *Cloud) doGetAction(dropletID, actionID string) reply {
	if dropletID != "" && c.doDropletLocked(dropletID) == nil {
		return doNotFound()
	}
	if !doPositiveInt.MatchString(actionID) {
		return doNotFound()
	}
	n, _ := strconv.ParseInt(actionID, 10, 64)
	a := c.actionLocked(n)
	if a == nil || a.Skin != "digitalocean" || (dropletID != "" && a.VMID != dropletID) {
		return doNotFound()
	}
	return jsonReply(http.StatusOK, map[string]any{"action": c.doActionJSON(a)})
}

// doListActions lists actions, paginated as DigitalOcean documents (page,
// per_page up to 200, links.pages, meta.total). Neither the seed nor
// DigitalOcean's reference says in which order: oldest first unless the
// world says otherwise.
func (c *Cloud) doListActions(r *http.Request, dropletID string, d *draw) reply {
	if dropletID != "" && c.doDropletLocked(dropletID) == nil {
		return doNotFound()
	}
	all := c.listedLocked(func(a *Action) bool {
		return a.Skin == "digitalocean" && (dropletID == "" || a.VMID == dropletID)
	})
	all = arrange(all, c.listOrderLocked(d, "digitalocean "+r.URL.EscapedPath()), c.seedLocked(), actionKey)
	return jsonReply(http.StatusOK, actionPage(r, all, c.doActionJSON))
}
