package provider

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

// Names lists every action name a driver accepts: its native names and the
// portable names it maps, sorted.
func (c Capabilities) Names() []string {
	names := make([]string, 0, len(c.Actions)+len(c.Portable))
	for n := range c.Actions {
		names = append(names, n)
	}
	for n := range c.Portable {
		if _, native := c.Actions[n]; !native {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Resolve turns a NodeAction's action and parameters into the native
// request a driver runs. A native name wins over a portable one. An action
// the driver lacks is a Terminal UnsupportedAction error listing the ones it
// has.
func Resolve(c Capabilities, nodeID, action string, params *v1alpha1.ActionParameters) (Request, error) {
	req := Request{NodeID: nodeID, Action: action}
	if params != nil {
		req.Parameters = *params.DeepCopy()
	}
	if _, ok := c.Actions[action]; ok {
		return req, nil
	}
	if n, ok := c.Portable[action]; ok {
		req.Action = n.Action
		if n.Implies != nil {
			n.Implies(&req.Parameters)
		}
		return req, nil
	}
	return Request{}, NewTerminal(UnsupportedAction,
		fmt.Sprintf("this provider has no action %q; it supports: %s", action, strings.Join(c.Names(), ", ")))
}

// Describe names the native action a request sends, with what the driver
// adds to the name (Senlin's "recover REBOOT SOFT").
func (c Capabilities) Describe(r Request) string {
	if c.DescribeFunc != nil {
		return c.DescribeFunc(r)
	}
	return r.Action
}

// Repeatable tells whether a request may be submitted again after the
// provider reported it failed.
func (c Capabilities) Repeatable(r Request) bool {
	info, ok := c.Actions[r.Action]
	if !ok {
		return false
	}
	if info.RepeatableIf != nil {
		return info.RepeatableIf(r)
	}
	return info.Repeatable
}

// RestartsGuest tells whether a request boots the VM's operating system.
func (c Capabilities) RestartsGuest(r Request) bool {
	return c.Actions[r.Action].RestartsGuest
}
