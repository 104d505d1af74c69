// Package fakecloud is an in-memory cloud of VMs that speaks the five
// provider APIs the operator drives (DigitalOcean, OpenStack Senlin, E2E
// Networks, CloudsFor, OpenScaler), each as its documents describe it:
// paths, auth, status codes, bodies, error envelopes and rate-limit headers.
//
// All five API skins share one VM model. Actions take a configurable time and
// complete lazily when observed. Faults can be injected per request, and
// every request is logged so tests can count provider calls.
//
// fakecloud never imports driver code: it declares its own wire types from
// PROVIDERS.md, so a driver's misreading of an API shows up as a failure.
package fakecloud

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Power is a VM's power state.
type Power string

const (
	PowerOn  Power = "on"
	PowerOff Power = "off"
)

// ActionState is where an action is.
type ActionState string

const (
	ActionInProgress ActionState = "in-progress"
	ActionCompleted  ActionState = "completed"
	ActionErrored    ActionState = "errored"
)

// VM is one virtual machine, seen by every skin.
type VM struct {
	ID     string
	Name   string
	Power  Power
	Region string
	// Size is a DigitalOcean-style size slug; Memory (GB), VCPUs, Disk (GB)
	// are the CloudsFor view of the same thing.
	Size   string
	Memory int
	VCPUs  int
	Disk   int
	Image  string
	Kernel int64

	// Locked is an administrative lock (E2E lock_vm): actions other than
	// unlock are refused.
	Locked bool
	// Flags are boolean features toggled by actions (backups, ipv6,
	// recovery_mode, accidental_protection, node_compliance).
	Flags map[string]bool
	// BackupPolicy as last set (plan, weekday, hour).
	BackupPolicy map[string]any
	// Snapshots taken, by name.
	Snapshots []string
	// Boots counts power-ups and reboots, so tests can see a reboot happen.
	Boots int
	// PasswordResets counts password resets.
	PasswordResets int
	// Reinstalls counts reinstalls, rebuilds and restores.
	Reinstalls int

	// IgnoreShutdown makes the guest ignore graceful shutdowns: the action
	// completes (the command was issued) but the VM stays on.
	IgnoreShutdown bool
	// FailNext makes the next action on this VM end errored with this text.
	FailNext string
	// FailNextAtOnce makes the next action on this VM errored from the
	// start: the answer that accepts it already says so.
	FailNextAtOnce string
	// ActionDuration overrides the cloud's default for this VM.
	ActionDuration time.Duration

	// pending is the action running on the VM, if any.
	pending *Action
}

// Busy reports whether an action is running on the VM.
func (v *VM) Busy() bool { return v.pending != nil }

// Pending returns the running action's type, or "".
func (v *VM) Pending() string {
	if v.pending == nil {
		return ""
	}
	return v.pending.Type
}

// Action is one action on one VM.
type Action struct {
	ID          int64
	UUID        string
	Skin        string
	VMID        string
	Type        string
	Params      map[string]any
	State       ActionState
	Message     string
	StartedAt   time.Time
	CompletedAt time.Time
	// ShownAt is when the VM's state starts to show the action: its
	// workflow begins then and runs for its duration.
	ShownAt time.Time
	// ListedAt is when action lists start to show it.
	ListedAt time.Time
	// LookAlikeBefore, on a look-alike the adversary planted in the
	// history (which no request started), is how long before the action it
	// imitates it is dated; zero on every other action.
	LookAlikeBefore time.Duration

	duration time.Duration
	// readyShare is the share of its run a Senlin action spends READY.
	readyShare float64
	effect     Effect
}

// endsAt is when a running action completes.
func (a *Action) endsAt() time.Time { return a.ShownAt.Add(a.duration) }

// Effect changes a VM when its action completes. An error makes the action
// end errored with the error's text, and leaves the VM as it was.
type Effect func(vm *VM) error

// Cloud is the in-memory cloud. It is safe for concurrent use.
type Cloud struct {
	mu  sync.Mutex
	now func() time.Time
	vms map[string]*VM
	// busy holds the VMs with an action pending: advancing the clock looks
	// at those, not at every VM (the bench's fakecloud holds 100,000).
	busy    map[*VM]struct{}
	actions []*Action // by StartedAt, oldest first
	byID    map[int64]*Action
	byUUID  map[string]*Action
	nextID  int64

	// ActionDuration is how long an action runs unless a VM says otherwise.
	actionDuration time.Duration

	creds  Credentials
	limits map[string]*rateWindow
	budget RateBudget

	log    []Request
	faults []*Fault

	// e2eDelay is how long an E2E node keeps its old state after accepting an action.
	e2eDelay  time.Duration
	compat    Compat
	adversary *Adversary
	// drawCounts counts requests per skin, method and path (adversarial mode).
	drawCounts map[string]int
}

// Options configure a Cloud.
type Options struct {
	// ActionDuration is how long actions take (default 2s).
	ActionDuration time.Duration
	// Credentials the skins accept (default DefaultCredentials()).
	Credentials *Credentials
	// RateBudget applies to the skins that publish one (DigitalOcean).
	RateBudget RateBudget
	// Now replaces the clock (tests).
	Now func() time.Time

	// E2EWorkflowDelay is how long an E2E node keeps its old state after
	// the API accepted an action (default DefaultE2EWorkflowDelay).
	E2EWorkflowDelay time.Duration
	// Compat restores choices the drivers before issue 13 rely on.
	Compat Compat
	// Adversary, when set, varies what the seeds leave open per request.
	Adversary *Adversary
}

// New returns an empty cloud.
func New(opts Options) *Cloud {
	c := &Cloud{
		now:            time.Now,
		vms:            map[string]*VM{},
		busy:           map[*VM]struct{}{},
		byID:           map[int64]*Action{},
		byUUID:         map[string]*Action{},
		nextID:         1000,
		actionDuration: 2 * time.Second,
		creds:          DefaultCredentials(),
		limits:         map[string]*rateWindow{},
		budget:         DefaultRateBudget(),
		e2eDelay:       DefaultE2EWorkflowDelay,
		compat:         opts.Compat,
		drawCounts:     map[string]int{},
	}
	if opts.E2EWorkflowDelay > 0 {
		c.e2eDelay = opts.E2EWorkflowDelay
	}
	if opts.Compat.E2EWorkflowAtOnce {
		c.e2eDelay = 0
	}
	if opts.Adversary != nil {
		a := opts.Adversary.withDefaults()
		c.adversary = &a
	}
	if opts.Now != nil {
		c.now = opts.Now
	}
	if opts.ActionDuration > 0 {
		c.actionDuration = opts.ActionDuration
	}
	if opts.Credentials != nil {
		c.creds = *opts.Credentials
	}
	if opts.RateBudget.Limit > 0 {
		c.budget = opts.RateBudget
	}
	return c
}

// SetActionDuration changes how long new actions take.
func (c *Cloud) SetActionDuration(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.actionDuration = d
}

// AddVM adds (or replaces) a VM. Zero fields get defaults: powered on,
// named after its id, a small size.
func (c *Cloud) AddVM(vm VM) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if vm.Name == "" {
		vm.Name = "vm-" + vm.ID
	}
	if vm.Power == "" {
		vm.Power = PowerOn
	}
	if vm.Region == "" {
		vm.Region = "nyc3"
	}
	if vm.Size == "" {
		vm.Size = "s-1vcpu-1gb"
	}
	if vm.Memory == 0 {
		vm.Memory = 1
	}
	if vm.VCPUs == 0 {
		vm.VCPUs = 1
	}
	if vm.Disk == 0 {
		vm.Disk = 25
	}
	if vm.Image == "" {
		vm.Image = "ubuntu-24-04-x64"
	}
	if vm.Flags == nil {
		vm.Flags = map[string]bool{}
	}
	v := vm
	if old := c.vms[vm.ID]; old != nil {
		// The replaced VM is gone, and with it what it was running.
		delete(c.busy, old)
	}
	c.vms[vm.ID] = &v
}

// VM returns a copy of a VM, after bringing its actions up to date.
func (c *Cloud) VM(id string) (VM, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked()
	vm, ok := c.vms[id]
	if !ok {
		return VM{}, false
	}
	return copyVM(vm), true
}

// VMs returns copies of every VM, sorted by id.
func (c *Cloud) VMs() []VM {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked()
	out := make([]VM, 0, len(c.vms))
	for _, vm := range c.vms {
		out = append(out, copyVM(vm))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// UpdateVM changes a VM in place (tests set FailNext, IgnoreShutdown, ...).
func (c *Cloud) UpdateVM(id string, change func(vm *VM)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	vm, ok := c.vms[id]
	if !ok {
		return fmt.Errorf("no VM %q", id)
	}
	change(vm)
	return nil
}

// Actions returns copies of every action, oldest first.
func (c *Cloud) Actions() []Action {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked()
	out := make([]Action, len(c.actions))
	for i, a := range c.actions {
		out[i] = *a
	}
	return out
}

func copyVM(vm *VM) VM {
	v := *vm
	v.Flags = make(map[string]bool, len(vm.Flags))
	for k, f := range vm.Flags {
		v.Flags[k] = f
	}
	v.Snapshots = append([]string(nil), vm.Snapshots...)
	v.pending = nil
	return v
}

// --- used by skins, with c.mu held ---

// vm returns the live VM after advancing time, or nil.
func (c *Cloud) vmLocked(id string) *VM {
	c.advanceLocked()
	return c.vms[id]
}

// startLocked begins an action on vm. It runs for the VM's (or the cloud's)
// action duration from the moment the VM's state starts to show it
// (planLocked picks when); with neither delay nor duration it completes at
// once. Every choice made is noted in d, the request's draw.
func (c *Cloud) startLocked(skin string, vm *VM, typ string, params map[string]any, effect Effect, d *draw) *Action {
	now := c.now().UTC()
	c.addLookAlikeLocked(skin, vm, typ, params, now, d)
	a := c.newActionLocked(skin, vm.ID, typ, params, now)
	a.State, a.duration, a.effect = ActionInProgress, c.durationLocked(vm), effect
	c.planLocked(a, d)
	if vm.FailNextAtOnce != "" {
		a.State, a.Message, a.CompletedAt = ActionErrored, vm.FailNextAtOnce, now
		vm.FailNextAtOnce = ""
		d.note("action %d errored at once: %s", a.ID, a.Message)
		return a
	}
	c.setPendingLocked(vm, a)
	if !now.Before(a.endsAt()) {
		c.finishLocked(a, vm)
	}
	return a
}

// runLocked applies an effect at once, as a synchronous API does, and
// records it as a completed action.
func (c *Cloud) runLocked(skin string, vm *VM, typ string, params map[string]any, effect Effect) (*Action, error) {
	a := c.newActionLocked(skin, vm.ID, typ, params, c.now().UTC())
	a.CompletedAt, a.effect = a.StartedAt, effect
	err := c.applyLocked(a, vm)
	return a, err
}

// newActionLocked records a new action that started at started.
func (c *Cloud) newActionLocked(skin, vmID, typ string, params map[string]any, started time.Time) *Action {
	c.nextID++
	a := &Action{ID: c.nextID, UUID: newUUID(c.nextID), Skin: skin, VMID: vmID, Type: typ, Params: params,
		StartedAt: started, ShownAt: started, ListedAt: started, readyShare: 0.25}
	// Kept in order of start: a back-dated action goes where it belongs.
	i := sort.Search(len(c.actions), func(i int) bool { return c.actions[i].StartedAt.After(started) })
	c.actions = slices.Insert(c.actions, i, a)
	c.byID[a.ID] = a
	c.byUUID[a.UUID] = a
	return a
}

// durationLocked is how long an action on vm runs, before any variation.
func (c *Cloud) durationLocked(vm *VM) time.Duration {
	if vm.ActionDuration > 0 {
		return vm.ActionDuration
	}
	return c.actionDuration
}

func (c *Cloud) finishLocked(a *Action, vm *VM) {
	if vm.pending == a {
		c.setPendingLocked(vm, nil)
	}
	a.CompletedAt = a.endsAt()
	if now := c.now().UTC(); a.CompletedAt.After(now) {
		a.CompletedAt = now
	}
	_ = c.applyLocked(a, vm)
}

func (c *Cloud) applyLocked(a *Action, vm *VM) error {
	if vm.FailNext != "" {
		a.State, a.Message = ActionErrored, vm.FailNext
		vm.FailNext = ""
		return fmt.Errorf("%s", a.Message)
	}
	if a.effect != nil {
		if err := a.effect(vm); err != nil {
			a.State, a.Message = ActionErrored, err.Error()
			return err
		}
	}
	a.State = ActionCompleted
	return nil
}

// setPendingLocked records the action vm runs (nil: none).
func (c *Cloud) setPendingLocked(vm *VM, a *Action) {
	vm.pending = a
	if a == nil {
		delete(c.busy, vm)
	} else {
		c.busy[vm] = struct{}{}
	}
}

// advanceLocked completes every action whose time has come.
func (c *Cloud) advanceLocked() {
	now := c.now()
	for vm := range c.busy {
		if a := vm.pending; a != nil && !now.Before(a.endsAt()) {
			c.finishLocked(a, vm)
		}
	}
}

// showingLocked is the action the VM's state shows: the running one, once
// its workflow began. Before that the VM looks as it did.
func (c *Cloud) showingLocked(vm *VM) *Action {
	if a := vm.pending; a != nil && !c.now().Before(a.ShownAt) {
		return a
	}
	return nil
}

// actionLocked finds an action by numeric id.
func (c *Cloud) actionLocked(id int64) *Action {
	c.advanceLocked()
	return c.byID[id]
}

// actionByUUIDLocked finds an action by UUID (Senlin).
func (c *Cloud) actionByUUIDLocked(uuid string) *Action {
	c.advanceLocked()
	return c.byUUID[uuid]
}

// listedLocked returns the actions matching keep that lists show by now,
// oldest first.
func (c *Cloud) listedLocked(keep func(*Action) bool) []*Action {
	c.advanceLocked()
	now := c.now()
	var out []*Action
	for _, a := range c.actions {
		if !now.Before(a.ListedAt) && (keep == nil || keep(a)) {
			out = append(out, a)
		}
	}
	return out
}

// lastLocked returns the newest action matching keep, or nil.
func (c *Cloud) lastLocked(keep func(*Action) bool) *Action {
	c.advanceLocked()
	for i := len(c.actions) - 1; i >= 0; i-- {
		if keep(c.actions[i]) {
			return c.actions[i]
		}
	}
	return nil
}

// newUUID derives a stable UUID-shaped id from a number.
func newUUID(n int64) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(n*2654435761), uint16(n), n%4096, (n/7)%4096, n)
}

// --- effects shared by skins ---

// PowerOnEffect boots a VM.
func PowerOnEffect(vm *VM) error {
	if vm.Power != PowerOn {
		vm.Power = PowerOn
		vm.Boots++
	}
	return nil
}

// HardOffEffect cuts the power.
func HardOffEffect(vm *VM) error {
	vm.Power = PowerOff
	return nil
}

// GracefulOffEffect asks the guest to shut down; a guest that ignores it stays on.
func GracefulOffEffect(vm *VM) error {
	if !vm.IgnoreShutdown {
		vm.Power = PowerOff
	}
	return nil
}

// RebootEffect restarts a running VM.
func RebootEffect(vm *VM) error {
	if vm.Power != PowerOn {
		return fmt.Errorf("VM is not running")
	}
	vm.Boots++
	return nil
}

// PowerCycleEffect turns the VM off and on again.
func PowerCycleEffect(vm *VM) error {
	vm.Power = PowerOn
	vm.Boots++
	return nil
}

// RenameEffect returns an effect that renames a VM.
func RenameEffect(name string) Effect {
	return func(vm *VM) error { vm.Name = name; return nil }
}

// SnapshotEffect returns an effect that records a snapshot.
func SnapshotEffect(name string) Effect {
	return func(vm *VM) error { vm.Snapshots = append(vm.Snapshots, name); return nil }
}

// FlagEffect returns an effect that sets a feature flag.
func FlagEffect(flag string, on bool) Effect {
	return func(vm *VM) error { vm.Flags[flag] = on; return nil }
}

// ReinstallEffect returns an effect that reinstalls a VM from image ("" keeps its image).
func ReinstallEffect(image string) Effect {
	return func(vm *VM) error {
		if image != "" {
			vm.Image = image
		}
		vm.Reinstalls++
		vm.Boots++
		vm.Power = PowerOn
		return nil
	}
}

// PasswordResetEffect counts a password reset.
func PasswordResetEffect(vm *VM) error {
	vm.PasswordResets++
	return nil
}

// Release ends now the console action Occupy started on a VM, if it still
// runs: tests occupy a VM until the operator has met the busy VM, however
// long a loaded machine took to get there, then let it go.
func (c *Cloud) Release(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked()
	if vm := c.vmLocked(id); vm != nil && vm.pending != nil && vm.pending.Skin == "console" {
		c.finishLocked(vm.pending, vm)
	}
}

// Occupy starts an action on a VM from outside the operator (a person at
// the provider's console), so the VM is busy for d and every skin refuses
// new actions on it as its API does.
func (c *Cloud) Occupy(id string, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	vm := c.vmLocked(id)
	if vm == nil {
		return fmt.Errorf("no VM %q", id)
	}
	a := c.newActionLocked("console", id, "console", nil, c.now().UTC())
	a.State, a.duration = ActionInProgress, d
	c.setPendingLocked(vm, a)
	return nil
}
