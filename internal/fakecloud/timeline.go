package fakecloud

import (
	"sort"
	"time"
)

// PeakConcurrent is the most actions that ran at once on the VMs keep
// selects, each from the moment the cloud accepted its request to its completion
// (actions still running count until now), and when that peak began. An
// action that ends at the instant another starts does not overlap it.
func (c *Cloud) PeakConcurrent(keep func(vmID string) bool) (int, time.Time) {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	now := c.now()
	for _, a := range c.Actions() {
		if a.LookAlikeBefore > 0 || (keep != nil && !keep(a.VMID)) {
			continue
		}
		end := a.CompletedAt
		if end.IsZero() {
			end = now
		}
		edges = append(edges, edge{a.StartedAt, 1}, edge{end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta // ends first
	})
	peak, cur := 0, 0
	var at time.Time
	for _, e := range edges {
		cur += e.delta
		if cur > peak {
			peak, at = cur, e.at
		}
	}
	return peak, at
}
