// Command krew packs the kubectl plugin for krew: one archive per platform
// (the kubectl-nodeaction binary, cross-compiled) and the krew manifest
// naming each archive's URL and sha256, for a release. `make krew
// VERSION=v0.1.0` runs it into dist/krew; then
//
//	kubectl krew install --manifest=dist/krew/nodeaction.yaml --archive=dist/krew/kubectl-nodeaction_linux_amd64.tar.gz
//
// installs the plugin from those files, and the release's assets go to the
// URLs the manifest names.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// platform is one os/arch the plugin is built for.
type platform struct{ os, arch string }

var platforms = []platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}}

// archive is one packed platform build.
type archive struct {
	platform
	file, sha256 string
}

func (a archive) bin() string {
	if a.os == "windows" {
		return "kubectl-nodeaction.exe"
	}
	return "kubectl-nodeaction"
}

func main() {
	version := flag.String("version", "", "release version, vMAJOR.MINOR.PATCH")
	out := flag.String("out", "dist/krew", "directory for the archives and nodeaction.yaml")
	baseURL := flag.String("base-url", "https://github.com/nodeaction/nodeaction-operator/releases/download", "where release assets are downloaded from; the version and file name are appended")
	flag.Parse()
	if err := run(*version, *out, *baseURL); err != nil {
		fmt.Fprintln(os.Stderr, "krew:", err)
		os.Exit(1)
	}
}

var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

func run(version, out, baseURL string) error {
	if !semver.MatchString(version) {
		return fmt.Errorf("--version %q: want a release version such as v0.1.0 (krew needs semver)", version)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	build, err := os.MkdirTemp("", "krew-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)
	var archives []archive
	for _, p := range platforms {
		a := archive{platform: p, file: fmt.Sprintf("kubectl-nodeaction_%s_%s.tar.gz", p.os, p.arch)}
		binPath := filepath.Join(build, p.os+"-"+p.arch, a.bin())
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binPath, "./cmd/kubectl-nodeaction")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.os, "GOARCH="+p.arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building for %s/%s: %w", p.os, p.arch, err)
		}
		if a.sha256, err = pack(binPath, filepath.Join(out, a.file)); err != nil {
			return err
		}
		archives = append(archives, a)
	}
	return os.WriteFile(filepath.Join(out, "nodeaction.yaml"), []byte(manifest(version, strings.TrimSuffix(baseURL, "/"), archives)), 0o644)
}

// pack writes a .tar.gz holding the binary and returns its sha256.
func pack(binPath, archivePath string) (string, error) {
	f, err := os.Create(archivePath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, sum))
	tw := tar.NewWriter(gz)
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return "", err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(binPath), Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return "", err
	}
	if _, err := tw.Write(bin); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(sum.Sum(nil)), f.Close()
}

// manifest is the krew plugin manifest (krew.googlecontainertools.github.com/v1alpha2 Plugin).
func manifest(version, baseURL string, archives []archive) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: nodeaction
spec:
  version: %s
  homepage: https://github.com/nodeaction/nodeaction-operator
  shortDescription: Run, follow, re-run and retry NodeActions on cloud VMs
  description: |
    Drives nodeaction-operator, which runs one action on one VM through a
    cloud provider's API (DigitalOcean, OpenStack Senlin, E2E Networks,
    CloudsFor, OpenScaler) as a NodeAction custom resource.
      kubectl nodeaction run reboot --provider digitalocean 3164494 --wait
      kubectl nodeaction status [NAME | -l SELECTOR] [--watch]
      kubectl nodeaction retry NAME   # a submission whose outcome is unknown
      kubectl nodeaction rerun NAME   # run the action again (new spec.runID)
    It acts with your kubeconfig and identity: your RBAC and the operator's
    admission policies decide what you may run.
  caveats: |
    nodeaction-operator must be installed in the cluster (Helm chart or
    dist/install.yaml): https://github.com/nodeaction/nodeaction-operator
  platforms:
`, version)
	for _, a := range archives {
		fmt.Fprintf(&b, `  - selector:
      matchLabels:
        os: %s
        arch: %s
    uri: %s/%s/%s
    sha256: %s
    bin: %s
`, a.os, a.arch, baseURL, version, a.file, a.sha256, a.bin())
	}
	return b.String()
}
