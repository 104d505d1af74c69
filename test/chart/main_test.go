// Package chart tests the Helm chart in dist/chart: that it is what
// hack/chartgen makes from config/ now (so chart and config/ never drift),
// that its RBAC and CRDs are config/'s, and that each rendering (defaults,
// and every switch flipped) applies server-side to a real kube-apiserver,
// where the manager runs with nothing but the rendered ServiceAccount's
// permissions and the admission policies work when they are on. Rendering
// uses the Helm v4 Go SDK (chart loader and engine), as `helm template` does.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

var (
	repoRoot string
	workDir  string
)

func TestMain(m *testing.M) {
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var err error
	if repoRoot, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		assets := filepath.Join(repoRoot, "bin", "k8s")
		if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
			fmt.Fprintln(os.Stderr, "kube-apiserver not found: run `make controlplane` (or `make test`) first")
			os.Exit(1)
		}
		os.Setenv("KUBEBUILDER_ASSETS", assets)
	}
	if workDir, err = os.MkdirTemp("", "chart-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// renderChart renders dist/chart for a release "nodeaction" in namespace
// with these values over the chart's defaults, as `helm template` does
// (Helm's engine, manifests in Helm's install order, NOTES.txt left out).
func renderChart(namespace string, values map[string]any) (string, error) {
	chrt, err := loader.Load(filepath.Join(repoRoot, "dist", "chart"))
	if err != nil {
		return "", err
	}
	vals, err := chartutil.ToRenderValues(chrt, values, common.ReleaseOptions{Name: "nodeaction", Namespace: namespace, Revision: 1, IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return "", err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return "", err
	}
	if len(hooks) > 0 {
		return "", fmt.Errorf("the chart has %d hooks; the tests expect none", len(hooks))
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	return b.String(), nil
}

func mustRender(t *testing.T, namespace string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	out, err := renderChart(namespace, values)
	if err != nil {
		t.Fatalf("rendering the chart with %v: %v", values, err)
	}
	objs, err := decodeObjects([]byte(out))
	if err != nil {
		t.Fatalf("the rendering is not YAML objects: %v\n%s", err, out)
	}
	return objs
}

func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// kustomizeBin is the kustomize the Makefile pins and builds into bin/.
func kustomizeBin(t *testing.T) string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KUSTOMIZE_VERSION \?= (\S+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile pins no KUSTOMIZE_VERSION")
	}
	bin := filepath.Join(repoRoot, "bin", "kustomize-"+string(m[1]))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make kustomize`", bin)
	}
	return bin
}

func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	cmd := exec.Command(kustomizeBin(t), "build", dir)
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	return out
}

// generateChart runs hack/chartgen on config/ now, into a new directory.
func generateChart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	install, monitoring := filepath.Join(dir, "install.yaml"), filepath.Join(dir, "monitoring.yaml")
	if err := os.WriteFile(install, kustomizeBuild(t, "config/default"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(monitoring, kustomizeBuild(t, "config/prometheus"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "chart")
	cmd := exec.Command("go", "run", "./hack/chartgen", "--install", install, "--monitoring", monitoring, "--out", out)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/chartgen: %v\n%s", err, b)
	}
	return out
}

// readTree returns every file under dir by its relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The committed chart is what hack/chartgen makes from config/ now: a new
// CRD, RBAC rule or object in config/ reaches dist/chart by `make chart`
// (or `make build-installer`), never by hand.
func TestChartIsGeneratedFromConfig(t *testing.T) {
	want := readTree(t, generateChart(t))
	got := readTree(t, filepath.Join(repoRoot, "dist", "chart"))
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		w, inWant := want[p]
		g, inGot := got[p]
		switch {
		case !inGot:
			t.Errorf("dist/chart lacks %s, which config/ now makes: run `make chart` and commit dist/chart", p)
		case !inWant:
			t.Errorf("dist/chart has %s, which config/ no longer makes: run `make chart` and commit dist/chart", p)
		case w != g:
			t.Errorf("dist/chart/%s is not what config/ makes now: run `make chart` and commit dist/chart\n%s", p, firstDifference(w, g))
		}
	}
	if len(want) < 10 {
		t.Fatalf("hack/chartgen wrote only %d files", len(want))
	}
}

func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("first difference at line %d:\n  generated: %q\n  committed: %q", i+1, wl, gl)
		}
	}
	return ""
}

var (
	managerOnce sync.Once
	managerBin  string
	managerErr  error
)

// manager builds the manager binary once.
func manager(t *testing.T) string {
	t.Helper()
	managerOnce.Do(func() {
		managerBin = filepath.Join(workDir, "manager")
		cmd := exec.Command("go", "build", "-o", managerBin, ".")
		cmd.Dir = repoRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			managerErr = fmt.Errorf("go build the manager: %v\n%s", err, b)
		}
	})
	if managerErr != nil {
		t.Fatal(managerErr)
	}
	return managerBin
}
