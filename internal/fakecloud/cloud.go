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

	duration time.Duration
	effect   Effect
}

// Effect changes a VM when its action completes. An error makes the action
// end errored with the error's text, and leaves the VM as it was.
type Effect func(vm *VM) error

// Cloud is the in-memory cloud. It is safe for concurrent use.
type Cloud struct {
	mu      sync.Mutex
	now     func() time.Time
	vms     map[string]*VM
	actions []*Action // in creation order
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
}

// New returns an empty cloud.
func New(opts Options) *Cloud {
	c := &Cloud{
		now:            time.Now,
		vms:            map[string]*VM{},
		byID:           map[int64]*Action{},
		byUUID:         map[string]*Action{},
		nextID:         1000,
		actionDuration: 2 * time.Second,
		creds:          DefaultCredentials(),
		limits:         map[string]*rateWindow{},
		budget:         DefaultRateBudget(),
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

// startLocked begins an action on vm. It completes after the VM's (or the
// cloud's) action duration; a zero duration completes it at once.
func (c *Cloud) startLocked(skin string, vm *VM, typ string, params map[string]any, effect Effect) *Action {
	c.nextID++
	d := c.actionDuration
	if vm.ActionDuration > 0 {
		d = vm.ActionDuration
	}
	a := &Action{
		ID: c.nextID, UUID: newUUID(c.nextID), Skin: skin, VMID: vm.ID, Type: typ, Params: params,
		State: ActionInProgress, StartedAt: c.now().UTC(), duration: d, effect: effect,
	}
	c.actions = append(c.actions, a)
	c.byID[a.ID] = a
	c.byUUID[a.UUID] = a
	vm.pending = a
	if d <= 0 {
		c.finishLocked(a, vm)
	}
	return a
}

// runLocked applies an effect at once, as a synchronous API does, and
// records it as a completed action.
func (c *Cloud) runLocked(skin string, vm *VM, typ string, params map[string]any, effect Effect) (*Action, error) {
	c.nextID++
	now := c.now().UTC()
	a := &Action{ID: c.nextID, UUID: newUUID(c.nextID), Skin: skin, VMID: vm.ID, Type: typ, Params: params,
		StartedAt: now, CompletedAt: now, effect: effect}
	c.actions = append(c.actions, a)
	c.byID[a.ID] = a
	c.byUUID[a.UUID] = a
	err := c.applyLocked(a, vm)
	return a, err
}

func (c *Cloud) finishLocked(a *Action, vm *VM) {
	if vm.pending == a {
		vm.pending = nil
	}
	a.CompletedAt = a.StartedAt.Add(a.duration)
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

// advanceLocked completes every action whose time has come.
func (c *Cloud) advanceLocked() {
	now := c.now()
	for _, vm := range c.vms {
		if a := vm.pending; a != nil && !now.Before(a.StartedAt.Add(a.duration)) {
			c.finishLocked(a, vm)
		}
	}
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

// actionsLocked returns the actions matching keep, newest first.
func (c *Cloud) actionsLocked(keep func(*Action) bool) []*Action {
	c.advanceLocked()
	var out []*Action
	for i := len(c.actions) - 1; i >= 0; i-- {
		if keep == nil || keep(c.actions[i]) {
			out = append(out, c.actions[i])
		}
	}
	return out
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
	c.nextID++
	a := &Action{ID: c.nextID, UUID: newUUID(c.nextID), Skin: "console", VMID: id, Type: "console",
		State: ActionInProgress, StartedAt: c.now().UTC(), duration: d}
	c.actions = append(c.actions, a)
	c.byID[a.ID] = a
	c.byUUID[a.UUID] = a
	vm.pending = a
	return nil
}
