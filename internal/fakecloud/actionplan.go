package fakecloud

import "time"

// planLocked picks, for a new action, when the VM's state starts to show it,
// when lists start to show it and how long it runs. Faithful: an E2E node
// keeps its old state for the workflow delay; other skins show the action
// at once. The adversary varies all three.
func (c *Cloud) planLocked(a *Action, d *draw) {
	var stateDelay time.Duration
	if a.Skin == "e2e" {
		stateDelay = c.e2eDelay
	}
	if d.adversarial() {
		maxDelay := d.adv.MaxStateDelay
		if a.Skin == "e2e" {
			maxDelay = max(maxDelay, c.e2eDelay)
		}
		stateDelay = d.upTo(maxDelay)
		if d.oneIn(listDelayOdds) {
			a.ListedAt = a.StartedAt.Add(d.upTo(d.adv.MaxListDelay))
			d.note("action %d kept out of lists for %s", a.ID, a.ListedAt.Sub(a.StartedAt).Round(time.Millisecond))
		}
		base := a.duration
		a.duration = time.Duration(float64(base) * (0.5 + 2*d.rng.Float64()))
		d.note("action %d runs %s (base %s)", a.ID, a.duration.Round(time.Millisecond), base)
		if a.Skin == "senlin" {
			a.readyShare = 0.8 * d.rng.Float64()
			d.note("action %d stays READY for %.0f%% of its run", a.ID, 100*a.readyShare)
		}
	}
	a.ShownAt = a.StartedAt.Add(stateDelay)
	if stateDelay > 0 {
		d.note("action %d: the VM's state shows it after %s", a.ID, stateDelay.Round(time.Millisecond))
	}
}

// keepsHistory tells the skins whose APIs list past actions.
func keepsHistory(skin string) bool {
	return skin == "digitalocean" || skin == "cloudsfor" || skin == "senlin"
}

// addLookAlikeLocked, in adversarial mode, sometimes records an earlier
// action just like the one about to start (same VM, type and parameters)
// that completed a few seconds before, as if someone at the provider's
// console had run it. It is recorded now and back-dated, the way a
// history entry that arrives late looks; it changes nothing on the VM.
func (c *Cloud) addLookAlikeLocked(skin string, vm *VM, typ string, params map[string]any, now time.Time, d *draw) {
	if !d.adversarial() || !keepsHistory(skin) || !d.oneIn(duplicateOdds) {
		return
	}
	before := duplicateMinBefore + d.upTo(duplicateMaxBefore-duplicateMinBefore)
	dup := c.newActionLocked(skin, vm.ID, typ, params, now.Add(-before))
	dup.State, dup.CompletedAt = ActionCompleted, dup.StartedAt.Add(time.Second)
	dup.LookAlikeBefore = before
	d.note("look-alike: a completed %s (action %d) on VM %s, started %s before this one", typ, dup.ID, vm.ID, before.Round(time.Millisecond))
}

// LookAlikes counts the look-alikes the adversary planted on a VM dated
// less than within before the action they imitate: a client that allows
// for clock skew cannot tell those from the action itself by their times.
func (c *Cloud) LookAlikes(vmID string, within time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.actions {
		if a.VMID == vmID && a.LookAlikeBefore > 0 && a.LookAlikeBefore < within {
			n++
		}
	}
	return n
}
