package fakecloud

import (
	"fmt"
	"strings"
	"time"
)

// Story tells what the cloud did with every logged request about a VM
// (vmID "" for every request): one line each, with the choices made, so a
// failing test can say what the world did.
func (c *Cloud) Story(vmID string) string {
	var b strings.Builder
	for _, r := range c.Log() {
		if vmID != "" && r.VMID != vmID {
			continue
		}
		fmt.Fprintf(&b, "%s %s %s %s -> %d", r.Time.Format(time.TimeOnly+".000"), r.Skin, r.Method, r.Path, r.Status)
		if r.Accepted {
			b.WriteString(" accepted")
		}
		if len(r.Choices) > 0 {
			fmt.Fprintf(&b, " [%s]", strings.Join(r.Choices, "; "))
		}
		if r.Draw != "" {
			fmt.Fprintf(&b, " (%s)", r.Draw)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
