package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewPlugin is the part of krew's Plugin manifest krew reads to install.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		ShortDescription string `json:"shortDescription"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// An archive holds the binary under the name the manifest's bin says, and
// the manifest names its sha256 and release URL, for every platform;
// krew's plugin name is the part of kubectl-nodeaction after "kubectl-".
func TestManifestDescribesTheArchives(t *testing.T) {
	dir := t.TempDir()
	var archives []archive
	for _, p := range platforms {
		a := archive{platform: p, file: "kubectl-nodeaction_" + p.os + "_" + p.arch + ".tar.gz"}
		bin := filepath.Join(dir, p.os+p.arch, a.bin())
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, []byte("binary for "+p.os+"/"+p.arch), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if a.sha256, err = pack(bin, filepath.Join(dir, a.file)); err != nil {
			t.Fatal(err)
		}
		archives = append(archives, a)
	}
	var m krewPlugin
	if err := yaml.Unmarshal([]byte(manifest("v0.1.0", "https://example.com/releases/download", archives)), &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "nodeaction" ||
		m.Spec.Version != "v0.1.0" || m.Spec.ShortDescription == "" || len(m.Spec.Platforms) != len(platforms) {
		t.Fatalf("manifest %+v", m)
	}
	for i, p := range m.Spec.Platforms {
		a := archives[i]
		if p.Selector.MatchLabels["os"] != a.os || p.Selector.MatchLabels["arch"] != a.arch || p.Bin != a.bin() ||
			p.URI != "https://example.com/releases/download/v0.1.0/"+a.file || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Sha256) {
			t.Errorf("platform %d: %+v does not describe %+v", i, p, a)
		}
		data, err := os.ReadFile(filepath.Join(dir, a.file))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != p.Sha256 {
			t.Errorf("%s: sha256 in the manifest is not the archive's", a.file)
		}
		gz, err := gzip.NewReader(bytesReader(data))
		if err != nil {
			t.Fatal(err)
		}
		h, err := tar.NewReader(gz).Next()
		if err != nil || h.Name != p.Bin || h.Mode&0o111 == 0 {
			t.Errorf("%s holds %+v (%v), want the executable %s", a.file, h, err, p.Bin)
		}
	}
	if err := run("0.1", t.TempDir(), "https://example.com"); err == nil {
		t.Error("a version that is not semver was accepted")
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
