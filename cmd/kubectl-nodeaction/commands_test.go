package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// run creates a NodeAction with a generated name and, with --wait, follows
// it to Succeeded; parameters land in spec.parameters with their types.
func TestRun(t *testing.T) {
	cloud.AddVM(fakecloud.VM{ID: "4001"})
	r := kubectlNodeaction(t, oliviaConfig, "", "run", "reboot", "--provider", "do", "4001", "--wait")
	if r.err != nil {
		t.Fatalf("run --wait: %v", r.err)
	}
	name := createdName(t, r.out)
	if !strings.HasPrefix(name, "reboot-4001-") {
		t.Errorf("generated name %q, want reboot-4001-<suffix>", name)
	}
	if !strings.Contains(r.out, name+": Succeeded (Completed)") {
		t.Errorf("run --wait did not print the end:\n%s", r.out)
	}
	na := getNodeAction(t, name)
	if na.Status.Phase != v1alpha1.PhaseSucceeded || na.Spec.Confirm != "" || na.Spec.Parameters != nil {
		t.Errorf("NodeAction %+v: want Succeeded, no confirm, no parameters", na.Spec)
	}
	if n := cloud.ActionCalls("4001"); n != 1 {
		t.Errorf("%d provider calls, want 1", n)
	}

	r = kubectlNodeaction(t, oliviaConfig, "", "run", "resize", "--provider", "do", "4002", "--param", "size=s-2vcpu-4gb", "--param", "disk=true")
	if r.err != nil {
		t.Fatal(r.err)
	}
	p := getNodeAction(t, createdName(t, r.out)).Spec.Parameters
	if p == nil || p.Size != "s-2vcpu-4gb" || p.Disk == nil || !*p.Disk {
		t.Errorf("spec.parameters %+v, want size s-2vcpu-4gb and disk true", p)
	}
}

// Every refusal is one line that says what to do: the API server's CEL
// rule for a destructive action without --confirm, the admission policy
// for a person without the action's verb, and the plugin's own checks.
func TestRunRefusals(t *testing.T) {
	for _, tc := range []struct {
		name       string
		kubeconfig string
		args       []string
		want       []string
	}{
		{"destructive without --confirm", adminConfig, []string{"run", "rebuild", "--provider", "do", "4101", "--param", "image=ubuntu-24-04-x64"},
			[]string{"this action is destructive: set spec.confirm to 4101"}},
		{"operator may not rebuild", oliviaConfig, []string{"run", "rebuild", "--provider", "do", "4102", "--param", "image=ubuntu-24-04-x64", "--confirm=4102"},
			[]string{"user olivia may not run the destructive action rebuild", `verb "rebuild"`}},
		{"unknown parameter", oliviaConfig, []string{"run", "resize", "--provider", "do", "4103", "--param", "sise=s-1vcpu-1gb"},
			[]string{`unknown parameter "sise"`, "size"}},
		{"parameter of the wrong type", oliviaConfig, []string{"run", "resize", "--provider", "e2e", "4104", "--param", "amount=lots"},
			[]string{"amount=lots: want a whole number"}},
		{"missing parameter", oliviaConfig, []string{"run", "rename", "--provider", "do", "4105"},
			[]string{"action rename needs spec.parameters.name"}},
		{"no provider", oliviaConfig, []string{"run", "reboot", "4106"}, []string{`"provider" not set`}},
		{"namespace that does not exist", adminConfig, []string{"run", "reboot", "--provider", "do", "4108", "--namespace", "nowhere"},
			[]string{`namespaces "nowhere" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kubectlNodeaction(t, tc.kubeconfig, "", tc.args...)
			line := r.errLine()
			if r.err == nil || strings.Contains(line, "\n") {
				t.Fatalf("got %q; want one error line", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q does not say %q", line, w)
				}
			}
		})
	}
	// --confirm as an admin: created, with spec.confirm.
	cloud.AddVM(fakecloud.VM{ID: "4107"})
	r := kubectlNodeaction(t, adminConfig, "", "run", "rebuild", "--provider", "do", "4107", "--param", "image=ubuntu-24-04-x64", "--confirm=4107")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if na := getNodeAction(t, createdName(t, r.out)); na.Spec.Confirm != "4107" {
		t.Errorf("spec.confirm %q, want 4107", na.Spec.Confirm)
	}
}

// A lost answer (fakecloud drops the connection after starting the E2E
// reboot) stops the NodeAction with SubmissionUnknown. retry refuses while
// the person does not confirm, then, confirmed, sets the annotation to the
// attempt id from status, and the operator makes exactly one more call.
func TestRetryAfterSubmissionUnknown(t *testing.T) {
	const id = "9601"
	cloud.AddVM(fakecloud.VM{ID: id, ActionDuration: 3 * time.Second}) // E2E proves a reboot by its workflow, seen between polls
	cloud.InjectFault(fakecloud.Fault{PathContains: "/" + id + "/", ActionOnly: true, Times: 1, Mode: fakecloud.AcceptThenDrop})
	r := kubectlNodeaction(t, oliviaConfig, "", "run", "reboot", "--provider", "e2e", id)
	if r.err != nil {
		t.Fatal(r.err)
	}
	name := createdName(t, r.out)
	na := waitForNodeAction(t, name, "SubmissionUnknown", func(n *v1alpha1.NodeAction) bool {
		return n.Status.Phase == v1alpha1.PhaseFailed && readyReason(n) == v1alpha1.ReasonSubmissionUnknown
	})
	attempt := na.Status.AttemptID
	if attempt == "" || cloud.ActionCalls(id) != 1 {
		t.Fatalf("attempt %q, %d calls: want an attempt id and 1 call", attempt, cloud.ActionCalls(id))
	}

	// status shows it.
	r = kubectlNodeaction(t, oliviaConfig, "", "status", name)
	if r.err != nil || !strings.Contains(r.out, "Failed") || !strings.Contains(r.out, v1alpha1.ReasonSubmissionUnknown) {
		t.Errorf("status %s: %v\n%s", name, r.err, r.out)
	}

	// Not confirmed: nothing changes.
	r = kubectlNodeaction(t, oliviaConfig, "no\n", "retry", name)
	if r.errLine() != "error: not confirmed: nothing changed" {
		t.Errorf("answering no: %q", r.errLine())
	}
	for _, shown := range []string{"Provider:", "e2e", "Node:", id, "Action:", "reboot", "Attempt:", attempt, "Message:", "Type yes to retry"} {
		if !strings.Contains(r.out, shown) {
			t.Errorf("retry did not show %q:\n%s", shown, r.out)
		}
	}
	if a := getNodeAction(t, name).Annotations[v1alpha1.AnnotationRetrySubmission]; a != "" {
		t.Fatalf("annotation set to %q without confirmation", a)
	}
	r = kubectlNodeaction(t, oliviaConfig, "", "retry", name)
	if r.err == nil || !strings.Contains(r.errLine(), "pass --yes") {
		t.Errorf("no answer on stdin: %q", r.errLine())
	}

	r = kubectlNodeaction(t, oliviaConfig, "", "retry", name, "--yes")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.out, "retry of attempt "+attempt+" requested") {
		t.Errorf("retry --yes printed:\n%s", r.out)
	}
	done := waitForNodeAction(t, name, "the retried attempt to succeed", func(n *v1alpha1.NodeAction) bool {
		return n.Status.AttemptID != attempt && n.Status.Phase == v1alpha1.PhaseSucceeded
	})
	if got := done.Annotations[v1alpha1.AnnotationRetrySubmission]; got != attempt {
		t.Errorf("annotation %q, want the attempt id from status %q", got, attempt)
	}
	if n := cloud.ActionCalls(id); n != 2 {
		t.Errorf("%d provider calls after the retry, want exactly 2 (the lost one and the retry)", n)
	}

	// Succeeded now: retry refuses, pointing at rerun.
	r = kubectlNodeaction(t, oliviaConfig, "", "retry", name, "--yes")
	if line := r.errLine(); !strings.Contains(line, "is Succeeded") || !strings.Contains(line, "kubectl nodeaction rerun "+name) {
		t.Errorf("retry of a succeeded NodeAction: %q", line)
	}
	if n := cloud.ActionCalls(id); n != 2 {
		t.Errorf("%d provider calls, want still 2", n)
	}
}

// rerun sets a new spec.runID, prints it, and the operator runs the action
// once more.
func TestRerun(t *testing.T) {
	const id = "4201"
	cloud.AddVM(fakecloud.VM{ID: id})
	r := kubectlNodeaction(t, oliviaConfig, "", "run", "power_cycle", "--provider", "do", id, "--wait")
	if r.err != nil {
		t.Fatal(r.err)
	}
	name := createdName(t, r.out)
	r = kubectlNodeaction(t, oliviaConfig, "", "rerun", name, "--wait")
	if r.err != nil {
		t.Fatal(r.err)
	}
	na := getNodeAction(t, name)
	if na.Spec.RunID == "" || !strings.Contains(r.out, "new run "+na.Spec.RunID) {
		t.Errorf("spec.runID %q; rerun printed:\n%s", na.Spec.RunID, r.out)
	}
	if na.Status.Phase != v1alpha1.PhaseSucceeded || na.Status.RunID != na.Spec.RunID || len(na.Status.History) != 1 {
		t.Errorf("after rerun --wait: phase %s, status.runID %q, %d history records; want Succeeded, the new runID, 1 record",
			na.Status.Phase, na.Status.RunID, len(na.Status.History))
	}
	if n := cloud.ActionCalls(id); n != 2 {
		t.Errorf("%d provider calls, want 2 (one per run)", n)
	}
	if r := kubectlNodeaction(t, oliviaConfig, "", "rerun", "no-such-nodeaction"); r.errLine() != "error: nodeaction no-such-nodeaction in namespace team not found" {
		t.Errorf("rerun of a missing NodeAction: %q", r.errLine())
	}
}

// status prints a table whose lines fit the terminal (the message is cut),
// by name, by label selector and for all namespaces; --watch on one name
// prints until it finishes.
func TestStatus(t *testing.T) {
	cloud.AddVM(fakecloud.VM{ID: "4301"})
	cloud.AddVM(fakecloud.VM{ID: "4302", ActionDuration: 1500 * time.Millisecond})
	r := kubectlNodeaction(t, oliviaConfig, "", "run", "reboot", "--provider", "do", "4301", "--name", "status-one", "--wait")
	if r.err != nil {
		t.Fatal(r.err)
	}
	na := getNodeAction(t, "status-one")
	na.Labels = map[string]string{"team": "sre"}
	if err := k8s.Update(t.Context(), na); err != nil {
		t.Fatal(err)
	}

	// A wide terminal shows every column; a narrow one keeps name, phase,
	// reason, age and message and still fits.
	for _, tc := range []struct {
		columns int
		headers []string
	}{
		{200, []string{"NAME", "PROVIDER", "NODE", "ACTION", "PHASE", "REASON", "AGE", "ACTION ID", "MESSAGE"}},
		{80, []string{"NAME", "ACTION", "PHASE", "REASON", "AGE", "MESSAGE"}},
	} {
		t.Setenv("COLUMNS", fmt.Sprint(tc.columns))
		r = kubectlNodeaction(t, oliviaConfig, "", "status")
		if r.err != nil {
			t.Fatal(r.err)
		}
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		for _, h := range tc.headers {
			if !strings.Contains(lines[0], h) {
				t.Errorf("COLUMNS=%d: header %q lacks %s", tc.columns, lines[0], h)
			}
		}
		found := false
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); n > tc.columns {
				t.Errorf("line of %d characters does not fit COLUMNS=%d: %q", n, tc.columns, l)
			}
			found = found || (strings.HasPrefix(l, "status-one ") && strings.Contains(l, "Succeeded") && strings.Contains(l, "Completed"))
		}
		if tc.columns == 200 && !strings.Contains(r.out, "DigitalOcean reports action") {
			t.Errorf("at %d columns the message is cut:\n%s", tc.columns, r.out)
		}
		if !found || len(lines) < 2 {
			t.Errorf("COLUMNS=%d: status does not list status-one as Succeeded/Completed among the team's NodeActions:\n%s", tc.columns, r.out)
		}
	}

	r = kubectlNodeaction(t, oliviaConfig, "", "status", "-l", "team=sre")
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); r.err != nil || len(lines) != 2 || !strings.HasPrefix(lines[1], "status-one ") {
		t.Errorf("status -l team=sre: %v\n%s", r.err, r.out)
	}
	r = kubectlNodeaction(t, adminConfig, "", "status", "-A", "-l", "team=sre")
	if r.err != nil || !strings.HasPrefix(r.out, "NAMESPACE ") || !strings.Contains(r.out, "team ") {
		t.Errorf("status -A: %v\n%s", r.err, r.out)
	}
	if r := kubectlNodeaction(t, oliviaConfig, "", "status", "missing"); r.errLine() != "error: nodeaction missing not found in namespace team" {
		t.Errorf("status of a missing NodeAction: %q", r.errLine())
	}
	// olivia may not read another namespace: the API server's refusal, one line.
	if r := kubectlNodeaction(t, oliviaConfig, "", "status", "-A"); r.err == nil || !strings.Contains(r.errLine(), "forbidden") {
		t.Errorf("status -A as olivia: %q", r.errLine())
	}

	// --watch on a name prints each change and ends when it finishes.
	r = kubectlNodeaction(t, oliviaConfig, "", "run", "reboot", "--provider", "do", "4302", "--name", "status-watched")
	if r.err != nil {
		t.Fatal(r.err)
	}
	r = kubectlNodeaction(t, oliviaConfig, "", "status", "status-watched", "--watch", "--timeout", "30s")
	if r.err != nil {
		t.Fatal(r.err)
	}
	tables := strings.Count(r.out, "NAME ")
	if tables < 2 || !strings.Contains(r.out, "Running") || !strings.Contains(r.out, "Succeeded") {
		t.Errorf("status --watch printed %d tables; want it to show Running then Succeeded:\n%s", tables, r.out)
	}
}

// Rows are cut to the width; without a width nothing is cut.
func TestPrintTableWidth(t *testing.T) {
	na := &v1alpha1.NodeAction{}
	na.Name, na.Spec.ProviderRef.Name, na.Spec.NodeID, na.Spec.Action = "a", "do", "1", "reboot"
	na.Status.Message = strings.Repeat("long message ", 20)
	var b strings.Builder
	printTable(&b, []*v1alpha1.NodeAction{na}, false, 100, time.Now())
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if utf8.RuneCountInString(l) > 100 {
			t.Errorf("%d > 100: %q", utf8.RuneCountInString(l), l)
		}
	}
	if !strings.Contains(b.String(), "…") {
		t.Errorf("the long message was not cut:\n%s", b.String())
	}
	b.Reset()
	printTable(&b, []*v1alpha1.NodeAction{na}, false, 0, time.Now())
	if !strings.Contains(b.String(), strings.TrimSpace(na.Status.Message)) {
		t.Errorf("with no width the message was cut:\n%s", b.String())
	}
}

// On a narrow terminal the widest of ACTION ID, PROVIDER and NODE gives way
// first (here a Senlin node's UUID), so the short ones stay.
func TestPrintTableDropsTheWidestColumnFirst(t *testing.T) {
	na := &v1alpha1.NodeAction{}
	na.Name, na.Spec.ProviderRef.Name, na.Spec.Action = "senlin-rebuild", "senlin", "recover"
	na.Spec.NodeID = "6b8d4f2a-3c5e-4f7a-9b0c-1d2e3f4a5b6c"
	na.Status.Phase, na.Status.ProviderActionID = v1alpha1.PhaseRunning, "a1"
	na.Status.Message = "Senlin action a1 (recover REBUILD) is running"
	var b strings.Builder
	printTable(&b, []*v1alpha1.NodeAction{na}, false, 100, time.Now())
	header := strings.SplitN(b.String(), "\n", 2)[0]
	if strings.Contains(header, "NODE") || !strings.Contains(header, "PROVIDER") || !strings.Contains(header, "ACTION ID") || !strings.Contains(header, "MESSAGE") {
		t.Errorf("at 100 columns want NODE (the widest) dropped and the rest kept:\n%s", b.String())
	}
}
