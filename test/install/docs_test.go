package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/install.md documents every flag the manager accepts (its --help),
// and only flags it accepts.
func TestInstallDocsCoverEveryFlag(t *testing.T) {
	out, err := exec.Command(dockerBuiltManager(t), "--help").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Usage") {
		t.Fatalf("manager --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 10 || !flags["leader-elect"] || !flags["watch-namespace"] {
		t.Fatalf("could not read the flags from --help:\n%s", out)
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	for f := range flags {
		if !regexp.MustCompile(`--` + regexp.QuoteMeta(f) + `\b([^-]|$)`).Match(doc) {
			t.Errorf("docs/install.md does not document --%s", f)
		}
	}
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]+)`).FindAllStringSubmatch(string(doc), -1) {
		if strings.HasPrefix(m[0], "--") && !flags[m[1]] && !kubectlFlag[m[1]] {
			t.Errorf("docs/install.md mentions --%s, which is neither a manager flag nor a known kubectl/kustomize/make flag", m[1])
		}
	}
}

// Flags of other tools (and --help) that docs/install.md may show.
var kubectlFlag = map[string]bool{
	"server-side": true, "force-conflicts": true, "namespace": true, "clusterrole": true, "serviceaccount": true,
	"user": true, "group": true, "for": true, "timeout": true, "as": true, "from-literal": true, "role": true,
	"verb": true, "resource": true, "resource-name": true, "field-manager": true, "dry-run": true, "selector": true,
	"all-namespaces": true, "duration": true, "type": true, "patch": true, "output": true, "help": true,
	// helm install
	"set": true, "create-namespace": true,
}

// docs/permissions.md names every ClusterRole and admission policy
// dist/install.yaml ships, and the destructive verbs.
func TestPermissionsDocNamesWhatIsShipped(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "permissions.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range readObjects(t, filepath.Join(repoRoot, "dist", "install.yaml")) {
		switch o.GetKind() {
		case "ClusterRole", "Role", "ValidatingAdmissionPolicy":
			if !strings.Contains(string(doc), o.GetName()) {
				t.Errorf("docs/permissions.md does not mention %s %s", o.GetKind(), o.GetName())
			}
		}
	}
	for _, v := range []string{"`use`", "`reinstall`", "`rebuild`", "`restore`", "`recreate`"} {
		if !strings.Contains(string(doc), v) {
			t.Errorf("docs/permissions.md does not mention the verb %s", v)
		}
	}
}
