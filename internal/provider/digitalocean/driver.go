// Package digitalocean drives DigitalOcean droplet actions
// (/v2/droplets/{id}/actions) through the official godo client, with godo's
// own retries off: the operator owns retries.
package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// DefaultEndpoint is DigitalOcean's public API.
const DefaultEndpoint = "https://api.digitalocean.com"

// RequestsPerMinute is as fast as DigitalOcean's published budget (250 in
// a window of a minute) can be spent without ever drawing a 429: the gate
// leaves budgetLow (2) of each window unspent and, the reset being reported
// in whole seconds, waits up to a second past it: 248 requests every 61 s.
// A faster pace only queues requests behind each spent window, and the
// queue grows every window. The gate also counts every request against the
// window the answers report, so running at this pace draws no 429.
const RequestsPerMinute = 243

var dropletID = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// Driver is the DigitalOcean driver.
type Driver struct {
	client *godo.Client
}

var _ provider.Driver = (*Driver)(nil)

// New builds a driver from the Secret key `token`.
func New(cfg provider.Config) (provider.Driver, error) {
	token := strings.TrimSpace(string(cfg.Credentials["token"]))
	if token == "" {
		return nil, provider.NewTerminal(provider.CredentialsError, `the credentials Secret has no key "token" (a DigitalOcean API token)`)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if err := provider.CheckEndpoint(endpoint); err != nil {
		return nil, err
	}
	hc := provider.WithHeaders(cfg.HTTPClient, func(h http.Header) { h.Set("Authorization", "Bearer "+token) })
	// godo.New without WithRetryAndBackoffs keeps its retries off.
	client, err := godo.New(hc, godo.SetBaseURL(strings.TrimSuffix(endpoint, "/")+"/"), godo.SetUserAgent(cfg.UserAgent))
	if err != nil {
		return nil, provider.NewTerminal(provider.InvalidConfig, "cannot build the DigitalOcean client: "+provider.Redact(err.Error()))
	}
	return &Driver{client: client}, nil
}

// Capabilities: every droplet action DigitalOcean documents. The portable
// names are all native here.
func (d *Driver) Capabilities() provider.Capabilities {
	return capabilities
}

var capabilities = provider.Capabilities{
	HardPowerOff: "power_off",
	Actions: map[string]provider.ActionInfo{
		"reboot":               {Repeatable: true, RestartsGuest: true},
		"power_cycle":          {Repeatable: true, RestartsGuest: true},
		"shutdown":             {Repeatable: true, Idempotent: true},
		"power_off":            {Repeatable: true, Idempotent: true},
		"power_on":             {Repeatable: true, Idempotent: true, RestartsGuest: true},
		"enable_backups":       {Repeatable: true, Idempotent: true},
		"disable_backups":      {Repeatable: true, Idempotent: true},
		"change_backup_policy": {Repeatable: true},
		"rename":               {Repeatable: true, Idempotent: true},
		"change_kernel":        {Repeatable: true},
		"enable_ipv6":          {Repeatable: true, Idempotent: true},
		"snapshot":             {},
		"password_reset":       {},
		"resize":               {},
		"rebuild":              {RestartsGuest: true},
		"restore":              {RestartsGuest: true},
	},
}

// Probe reads the account: one cheap authenticated GET.
func (d *Driver) Probe(ctx context.Context) error {
	_, _, err := d.client.Account.Get(ctx)
	return classify(err, http.MethodGet)
}

// Validate checks the droplet id and the parameters the action needs.
func (d *Driver) Validate(req provider.Request) error {
	if !dropletID.MatchString(req.NodeID) {
		return provider.NewTerminal(provider.InvalidNodeID,
			fmt.Sprintf("DigitalOcean droplet ids are positive integers; %q is not one", req.NodeID))
	}
	p := req.Parameters
	invalid := func(msg string) error { return provider.NewTerminal(provider.InvalidParameters, msg) }
	switch req.Action {
	case "rename":
		if p.Name == "" {
			return invalid("rename needs spec.parameters.name")
		}
	case "restore":
		if _, err := strconv.Atoi(p.Image); err != nil {
			return invalid("restore needs spec.parameters.image set to the integer id of a backup of this droplet")
		}
	case "rebuild":
		if p.Image == "" {
			return invalid("rebuild needs spec.parameters.image (an image id or slug)")
		}
	case "resize":
		if p.Size == "" {
			return invalid("DigitalOcean resize needs spec.parameters.size (a size slug such as s-2vcpu-4gb); resource, amount and resources are CloudsFor parameters")
		}
	case "change_kernel":
		if p.Kernel == nil {
			return invalid("change_kernel needs spec.parameters.kernel")
		}
	case "change_backup_policy":
		if p.BackupPolicy == nil {
			return invalid("change_backup_policy needs spec.parameters.backupPolicy")
		}
	}
	return nil
}

// Submit posts the action: exactly one request.
func (d *Driver) Submit(ctx context.Context, req provider.Request) (provider.Submission, error) {
	if err := d.Validate(req); err != nil {
		return provider.Submission{}, err
	}
	id, _ := strconv.Atoi(req.NodeID)
	p := req.Parameters
	da := d.client.DropletActions
	var a *godo.Action
	var err error
	switch req.Action {
	case "reboot":
		a, _, err = da.Reboot(ctx, id)
	case "power_cycle":
		a, _, err = da.PowerCycle(ctx, id)
	case "shutdown":
		a, _, err = da.Shutdown(ctx, id)
	case "power_off":
		a, _, err = da.PowerOff(ctx, id)
	case "power_on":
		a, _, err = da.PowerOn(ctx, id)
	case "password_reset":
		a, _, err = da.PasswordReset(ctx, id)
	case "enable_ipv6":
		a, _, err = da.EnableIPv6(ctx, id)
	case "disable_backups":
		a, _, err = da.DisableBackups(ctx, id)
	case "enable_backups":
		if p.BackupPolicy != nil {
			a, _, err = da.EnableBackupsWithPolicy(ctx, id, backupPolicy(p.BackupPolicy))
		} else {
			a, _, err = da.EnableBackups(ctx, id)
		}
	case "change_backup_policy":
		a, _, err = da.ChangeBackupPolicy(ctx, id, backupPolicy(p.BackupPolicy))
	case "restore":
		img, _ := strconv.Atoi(p.Image)
		a, _, err = da.Restore(ctx, id, img)
	case "rebuild":
		if img, convErr := strconv.Atoi(p.Image); convErr == nil {
			a, _, err = da.RebuildByImageID(ctx, id, img)
		} else {
			a, _, err = da.RebuildByImageSlug(ctx, id, p.Image)
		}
	case "resize":
		a, _, err = da.Resize(ctx, id, p.Size, p.Disk != nil && *p.Disk)
	case "rename":
		a, _, err = da.Rename(ctx, id, p.Name)
	case "change_kernel":
		a, _, err = da.ChangeKernel(ctx, id, int(*p.Kernel))
	case "snapshot":
		a, _, err = da.Snapshot(ctx, id, p.Name)
	default:
		return provider.Submission{}, provider.NewTerminal(provider.UnsupportedAction, fmt.Sprintf("DigitalOcean has no action %q", req.Action))
	}
	if err != nil {
		return provider.Submission{}, classifySubmit(err)
	}
	if a == nil || a.ID == 0 {
		// Accepted, but with no action id to follow: found by lookup,
		// never taken for a failure (which could send it again).
		return provider.Submission{}, provider.NewAmbiguous("DigitalOcean accepted the request but returned no action id")
	}
	sub := submission(req, a)
	// An action already completed needs no poll, unless its effect is
	// checked on the droplet.
	if a.Status == godo.ActionCompleted && !needsReadBack(req.Action) {
		sub.Done = &provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed,
			Message: "DigitalOcean reports the action completed", CompletedAt: timeOf(a.CompletedAt)}
	}
	return sub, nil
}

func submission(req provider.Request, a *godo.Action) provider.Submission {
	return provider.Submission{Request: req, ActionID: strconv.Itoa(a.ID), StartedAt: timeOf(a.StartedAt)}
}

func backupPolicy(p *v1alpha1.BackupPolicy) *godo.DropletBackupPolicyRequest {
	r := &godo.DropletBackupPolicyRequest{Plan: p.Plan, Weekday: p.Weekday}
	if p.Hour != nil {
		h := int(*p.Hour)
		r.Hour = &h
	}
	return r
}

func timeOf(t *godo.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// Status reads the action, and for actions whose effect the droplet shows
// (power state, name), reads the droplet back before calling it done.
func (d *Driver) Status(ctx context.Context, sub provider.Submission) (provider.ActionStatus, error) {
	id, err := strconv.Atoi(sub.ActionID)
	if err != nil {
		return provider.ActionStatus{}, provider.NewTerminal(provider.ActionFailed, fmt.Sprintf("action id %q is not a DigitalOcean action id", sub.ActionID))
	}
	a, _, err := d.client.Actions.Get(ctx, id)
	if err != nil {
		e := classify(err, http.MethodGet)
		if pe := provider.AsError(e); pe.StatusCode == http.StatusNotFound {
			return provider.ActionStatus{}, provider.NewTerminal(provider.ActionFailed, fmt.Sprintf("DigitalOcean no longer knows action %d", id))
		}
		return provider.ActionStatus{}, e
	}
	return d.statusOf(ctx, sub, *a)
}

func (d *Driver) statusOf(ctx context.Context, sub provider.Submission, a godo.Action) (provider.ActionStatus, error) {
	switch a.Status {
	case godo.ActionInProgress:
		return provider.ActionStatus{State: provider.StateInProgress, Message: fmt.Sprintf("DigitalOcean action %d (%s) is in progress", a.ID, a.Type)}, nil
	case godo.ActionCompleted:
	default:
		return provider.ActionStatus{State: provider.StateFailed, Class: provider.ActionFailed, CompletedAt: timeOf(a.CompletedAt),
			Message: fmt.Sprintf("DigitalOcean reports action %d (%s) %s", a.ID, a.Type, a.Status)}, nil
	}
	done := provider.ActionStatus{State: provider.StateSucceeded, Class: provider.Completed, CompletedAt: timeOf(a.CompletedAt),
		Message: fmt.Sprintf("DigitalOcean reports action %d (%s) completed", a.ID, a.Type)}
	if !needsReadBack(sub.Action) {
		return done, nil
	}
	id, _ := strconv.Atoi(sub.NodeID)
	droplet, _, err := d.client.Droplets.Get(ctx, id)
	if err != nil {
		return provider.ActionStatus{}, classify(err, http.MethodGet)
	}
	if agrees, want := readBackAgrees(sub, droplet); !agrees {
		return provider.ActionStatus{State: provider.StateInProgress, Class: provider.Verifying,
			Message: fmt.Sprintf("DigitalOcean reports %s completed, but the droplet is %s, not %s yet", a.Type, describe(droplet, sub.Action), want)}, nil
	}
	done.Message += " and the droplet shows it"
	return done, nil
}

// StatusBatch pages through the account's actions, newest first, 200 at a
// time, until every submission is found or the list is older than the
// oldest of them. Action ids grow over time, which bounds the walk.
func (d *Driver) StatusBatch(ctx context.Context, subs []provider.Submission) ([]provider.ActionStatus, error) {
	want := make(map[int][]int, len(subs)) // action id → indexes in subs
	oldest := 0
	for i, s := range subs {
		id, err := strconv.Atoi(s.ActionID)
		if err != nil {
			continue
		}
		want[id] = append(want[id], i)
		if oldest == 0 || id < oldest {
			oldest = id
		}
	}
	out := make([]provider.ActionStatus, len(subs))
	// Neither the seed nor DigitalOcean's reference fixes the list's
	// order. The first page shows it: newest first, read forward until
	// the oldest wanted id; oldest first, jump to the last page and read
	// backward to it; anything else, every page. Whatever the list does,
	// an action the sweep misses is read on its own by the caller.
	order := listUnknown
	page, last := 1, 0
	read := map[int]bool{}
	for len(want) > 0 && page > 0 && !read[page] {
		actions, resp, err := d.client.Actions.List(ctx, &godo.ListOptions{Page: page, PerPage: 200})
		if err != nil {
			return nil, classify(err, http.MethodGet)
		}
		read[page] = true
		lo, hi := 0, 0
		for i, a := range actions {
			if i == 0 || a.ID < lo {
				lo = a.ID
			}
			if a.ID > hi {
				hi = a.ID
			}
			for _, i := range want[a.ID] {
				st, err := d.statusOf(ctx, subs[i], a)
				if err != nil {
					if ctx.Err() != nil {
						return nil, err
					}
					// A droplet read-back failed: left out, Status meets
					// the error for this action alone rather than failing
					// the sweep for every other.
					continue
				}
				out[i] = st
			}
			delete(want, a.ID)
		}
		isLast := len(actions) == 0 || resp == nil || resp.Links == nil || resp.Links.IsLastPage()
		if page == 1 {
			order, last = orderOf(actions), lastPage(resp)
			if order == listOldestFirst && last == 0 && !isLast {
				order = listUnknown // no link to the last page: read on
			}
		}
		switch {
		case len(actions) == 0:
			page = 0
		case order == listNewestFirst:
			if lo <= oldest || isLast {
				page = 0
			} else {
				page++
			}
		case order == listOldestFirst:
			// Pages after this one hold newer ids: read from the last
			// one backward until a page reaches the oldest wanted id.
			switch {
			case page == 1 && last > 1:
				page = last
			case page > 1 && lo > oldest:
				page--
			default:
				page = 0
			}
		case isLast:
			page = 0
		default:
			page++
		}
	}
	return out, nil
}

// listOrder is the order a page of the account's actions shows.
type listOrder int

const (
	listUnknown listOrder = iota
	listNewestFirst
	listOldestFirst
)

// orderOf tells a page sorted by id, descending or ascending, from any
// other (or too short to tell).
func orderOf(actions []godo.Action) listOrder {
	if len(actions) < 2 {
		return listUnknown
	}
	desc, asc := true, true
	for i := 1; i < len(actions); i++ {
		desc = desc && actions[i].ID < actions[i-1].ID
		asc = asc && actions[i].ID > actions[i-1].ID
	}
	switch {
	case desc:
		return listNewestFirst
	case asc:
		return listOldestFirst
	}
	return listUnknown
}

// lastPage is the number of the list's last page from its links, 0 when
// they do not say.
func lastPage(resp *godo.Response) int {
	if resp == nil || resp.Links == nil || resp.Links.Pages == nil || resp.Links.Pages.Last == "" {
		return 0
	}
	u, err := url.Parse(resp.Links.Pages.Last)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(u.Query().Get("page"))
	if err != nil {
		return 0
	}
	return n
}

func needsReadBack(action string) bool {
	switch action {
	case "power_on", "power_off", "shutdown", "rename":
		return true
	}
	return false
}

// readBackAgrees tells whether the droplet shows the action's effect, and
// what it should show.
func readBackAgrees(sub provider.Submission, d *godo.Droplet) (bool, string) {
	switch sub.Action {
	case "power_on":
		return d.Status == "active", "active"
	case "power_off", "shutdown":
		return d.Status == "off", "off"
	case "rename":
		return d.Name == sub.Parameters.Name, fmt.Sprintf("named %q", sub.Parameters.Name)
	}
	return true, ""
}

func describe(d *godo.Droplet, action string) string {
	if action == "rename" {
		return fmt.Sprintf("named %q", d.Name)
	}
	return d.Status
}

// lookupPages bounds how much of a droplet's action history one lookup
// reads (200 actions a page).
const lookupPages = 10

// Lookup reads the droplet's action history for actions of the request's
// type started in the window. DigitalOcean documents no order for the list,
// so every page is read (up to lookupPages).
func (d *Driver) Lookup(ctx context.Context, req provider.Request, w provider.Window) (provider.Found, error) {
	if err := d.Validate(req); err != nil {
		return provider.Found{}, err
	}
	id, _ := strconv.Atoi(req.NodeID)
	found := provider.Found{Complete: true}
	opt := &godo.ListOptions{Page: 1, PerPage: 200}
	for ; ; opt.Page++ {
		if opt.Page > lookupPages {
			found.Complete = false
			found.Why = fmt.Sprintf("droplet %d has more than %d actions in its history; only %d were read", id, lookupPages*200, lookupPages*200)
			return found, nil
		}
		actions, resp, err := d.client.Droplets.Actions(ctx, id, opt)
		if err != nil {
			return provider.Found{}, classify(err, http.MethodGet)
		}
		for i := range actions {
			a := actions[i]
			switch {
			case a.Type != req.Action:
			case a.StartedAt == nil:
				found.Complete = false
				found.Why = fmt.Sprintf("DigitalOcean lists %s action %d on droplet %d without a start time", a.Type, a.ID, id)
			case w.Contains(a.StartedAt.Time):
				found.Candidates = append(found.Candidates, submission(req, &a))
			}
		}
		if resp == nil || resp.Links == nil || resp.Links.IsLastPage() || len(actions) == 0 {
			return found, nil
		}
	}
}

// classifySubmit reads a failed action POST; 422 "pending event" means
// another action is running on the droplet, which is worth waiting for.
func classifySubmit(err error) error {
	e := provider.AsError(classify(err, http.MethodPost))
	if e.StatusCode == http.StatusUnprocessableEntity && strings.Contains(strings.ToLower(e.Message), "pending event") {
		e.Kind, e.Class = provider.Retryable, provider.Busy
	}
	return e
}

// classify turns a godo error into a provider error.
func classify(err error, method string) error {
	if err == nil {
		return nil
	}
	var er *godo.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		msg := er.Message
		if msg == "" {
			msg = http.StatusText(er.Response.StatusCode)
		}
		e := provider.StatusError(er.Response.StatusCode, er.Response.Header, method, msg)
		e.Err = err
		return e
	}
	return provider.AsError(err)
}
