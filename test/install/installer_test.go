package install

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

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
		t.Fatalf("%s is missing: run `make kustomize` (it builds kustomize from Go modules)", bin)
	}
	return bin
}

func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	cmd := exec.Command(kustomizeBin(t), "build", dir)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr)
	}
	return out
}

// dist/install.yaml is committed so that users can apply it from a URL; it
// must be what `make build-installer` makes from config/ now.
func TestInstallYAMLIsUpToDate(t *testing.T) {
	want := kustomizeBuild(t, "config/default")
	got, err := os.ReadFile(filepath.Join(repoRoot, "dist", "install.yaml"))
	if err != nil {
		t.Fatalf("%v: run `make build-installer`", err)
	}
	if string(got) != string(want) {
		t.Fatalf("dist/install.yaml is stale (config/ or the generated CRDs/RBAC changed): run `make build-installer` and commit it.\n%s",
			firstDifference(string(want), string(got)))
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
			return fmt.Sprintf("first difference at line %d:\n  kustomize build: %q\n  dist/install.yaml: %q", i+1, wl, gl)
		}
	}
	return ""
}

// Applying dist/install.yaml with server-side apply creates every object it
// holds, and applying it again (as GitOps tools do) changes nothing.
func TestInstallYAMLApplies(t *testing.T) {
	installed(t)
	if strings.TrimSpace(installWarn) != "" {
		t.Errorf("applying dist/install.yaml drew warnings (Pod Security, deprecated APIs, ...):\n%s", installWarn)
	}
	objs := readObjects(t, filepath.Join(repoRoot, "dist", "install.yaml"))
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(o), got); err != nil {
			t.Errorf("%s %s/%s was not created: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		if !strings.Contains(installOut, "serverside-applied") || !strings.Contains(installOut, o.GetName()) {
			t.Errorf("kubectl apply output does not name %s %s:\n%s", o.GetKind(), o.GetName(), installOut)
		}
	}
	for kind, n := range map[string]int{
		"Namespace": 1, "CustomResourceDefinition": 3, "ServiceAccount": 1, "Deployment": 1, "Service": 1,
		"ValidatingAdmissionPolicy": 3, "ValidatingAdmissionPolicyBinding": 3,
	} {
		if kinds[kind] != n {
			t.Errorf("dist/install.yaml has %d %s, want %d", kinds[kind], kind, n)
		}
	}
	for _, name := range []string{"nodeactions.compute.nodeaction.dev", "nodeactionsets.compute.nodeaction.dev", "providers.compute.nodeaction.dev"} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, crd); err != nil {
			t.Fatal(err)
		}
		established := false
		for _, c := range crd.Status.Conditions {
			established = established || (c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue)
		}
		if !established {
			t.Errorf("CRD %s is not Established: %+v", name, crd.Status.Conditions)
		}
	}

	out, stderr, err := runKubectl("apply", "--server-side", "--field-manager=install-test", "-f", filepath.Join(repoRoot, "dist", "install.yaml"))
	if err != nil {
		t.Fatalf("applying dist/install.yaml a second time: %v\n%s%s", err, out, stderr)
	}
	// kubectl's own kustomize (`kubectl apply -k`) makes an install the
	// apiserver accepts as well.
	if out, stderr, err := runKubectl("apply", "--server-side", "--field-manager=install-test", "--dry-run=server", "-k", filepath.Join(repoRoot, "config", "default")); err != nil {
		t.Fatalf("kubectl apply --server-side -k config/default: %v\n%s%s", err, out, stderr)
	}
	if out, stderr, err := runKubectl("diff", "--server-side", "--field-manager=install-test", "-f", filepath.Join(repoRoot, "dist", "install.yaml")); err != nil {
		t.Fatalf("kubectl diff after apply shows drift (exit %v); GitOps tools would see the install out of sync:\n%s%s", err, out, stderr)
	}
}

// The manager Deployment: leader election, secure metrics on 8443, probes
// on 8081, JSON logs, resources with GOMEMLIMIT from the memory limit, and
// the restricted security context; the metrics Service reaches it.
func TestManagerDeploymentShape(t *testing.T) {
	dep := &appsv1.Deployment{}
	fromUnstructured(t, installObject(t, "Deployment", deploymentName), dep)
	if dep.Namespace != systemNamespace || dep.Spec.Template.Spec.ServiceAccountName != managerSA {
		t.Errorf("Deployment in %q with ServiceAccount %q, want %q and %q", dep.Namespace, dep.Spec.Template.Spec.ServiceAccountName, systemNamespace, managerSA)
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(dep.Spec.Template.Spec.Containers))
	}
	c := dep.Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"--leader-elect", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081", "--zap-encoder=json"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("manager args %v lack %s", c.Args, arg)
		}
	}
	if c.Image == "" || strings.HasPrefix(c.Image, "controller:") {
		t.Errorf("image %q was not set by kustomize (images: in config/manager)", c.Image)
	}
	if !slices.Equal(c.Command, []string{"/manager"}) {
		t.Errorf("command %v, want [/manager] (the Dockerfile's binary)", c.Command)
	}
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.IntValue() != 8081 {
			t.Errorf("want an HTTP probe of %s on 8081, got %+v", path, probe)
		}
	}
	// The Go runtime's soft memory limit is the container's.
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }); i < 0 ||
		c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.ResourceFieldRef == nil || c.Env[i].ValueFrom.ResourceFieldRef.Resource != "limits.memory" {
		t.Errorf("env %+v: want GOMEMLIMIT from the container's limits.memory", c.Env)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
	pod := dep.Spec.Template.Spec.SecurityContext
	sc := c.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", pod)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container securityContext %+v: want no privilege escalation, read-only root, capabilities drop ALL", sc)
	}

	svc := &corev1.Service{}
	fromUnstructured(t, installObject(t, "Service", metricsService), svc)
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("metrics Service selects %s=%s, which the manager pod does not carry (%v)", k, v, dep.Spec.Template.Labels)
		}
	}
	if len(svc.Spec.Selector) == 0 || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].TargetPort.IntValue() != 8443 {
		t.Errorf("metrics Service %+v: want port 8443 to the pod's 8443", svc.Spec)
	}
	ports := map[int32]bool{}
	for _, p := range c.Ports {
		ports[p.ContainerPort] = true
	}
	if !ports[8443] || !ports[8081] {
		t.Errorf("container ports %+v: want 8443 (metrics) and 8081 (probes)", c.Ports)
	}
}

func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

// The Dockerfile builds only the manager, statically, and runs it as
// non-root on distroless. No Docker engine here, so the test checks its
// instructions and does what its build stage does (dockerBuiltManager).
func TestDockerfileBuildsAStaticManager(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM golang:1.26 AS builder", "CGO_ENABLED=0", "FROM gcr.io/distroless/static:nonroot", "USER 65532:65532", `ENTRYPOINT ["/manager"]`} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	f, err := elf.Open(dockerBuiltManager(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the manager built as the Dockerfile does is dynamically linked (%v): it would not run on distroless/static", p.Type)
		}
	}
}

var (
	managerOnce sync.Once
	managerBin  string
	managerErr  error
)

// dockerBuiltManager builds the manager as the Dockerfile's build stage
// does: it copies what the Dockerfile COPYs (less what .dockerignore drops)
// into an empty directory and builds there with CGO_ENABLED=0, offline. So
// a source file the image build would miss fails here. (It leaves out the
// Dockerfile's -trimpath and -ldflags, which only strip paths and symbols
// and would make Go rebuild every dependency.) The binary is built once
// and shared with the tests that run it.
func dockerBuiltManager(t *testing.T) string {
	t.Helper()
	managerOnce.Do(func() { managerBin, managerErr = buildLikeDockerfile() })
	if managerErr != nil {
		t.Fatal(managerErr)
	}
	return managerBin
}

func buildLikeDockerfile() (string, error) {
	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		return "", err
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		return "", err
	}
	ctxDir := filepath.Join(workDir, "docker-context")
	copied := 0
	for _, line := range strings.Split(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			if !slices.Contains(strings.Split(string(ignore), "\n"), "!"+strings.TrimSuffix(src, "/")+"/") &&
				!slices.Contains(strings.Split(string(ignore), "\n"), "!"+src) {
				return "", fmt.Errorf(".dockerignore does not let %s into the build context", src)
			}
			if err := copyTree(filepath.Join(repoRoot, src), filepath.Join(ctxDir, src)); err != nil {
				return "", err
			}
			copied++
		}
	}
	if copied == 0 {
		return "", fmt.Errorf("the Dockerfile COPYs nothing")
	}
	out := filepath.Join(workDir, "manager")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOPROXY=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in the Docker build context: %v\n%s", err, b)
	}
	return out, nil
}

// copyTree copies a file or directory, leaving out what .dockerignore does
// (tests and testdata).
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			if info.Name() == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(p, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

func runtimeToUnstructured(v any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(v)
}
