package shard

import (
	"strings"
	"testing"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

func TestParse(t *testing.T) {
	for _, name := range []string{"", "a", "blue", "shard-1", "0", strings.Repeat("a", 63)} {
		if _, err := Parse(name); err != nil {
			t.Errorf("Parse(%q): %v", name, err)
		}
	}
	for name, want := range map[string]string{
		"Blue":                  "lowercase",
		"shard_1":               "lowercase",
		"a.b":                   "--shard=\"a.b\"",
		"-a":                    "alphanumeric",
		"a-":                    "alphanumeric",
		"a b":                   "alphanumeric",
		"a/b":                   "alphanumeric",
		strings.Repeat("a", 64): "63",
	} {
		_, err := Parse(name)
		if err == nil {
			t.Errorf("Parse(%q) accepted a name that cannot be a label value and a Lease name", name)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), Label) {
			t.Errorf("Parse(%q): %q does not say %q and name the label", name, err, want)
		}
	}
}

func TestSelector(t *testing.T) {
	unsharded, _ := Parse("")
	blue, _ := Parse("blue")
	for _, tc := range []struct {
		s      Shard
		want   string
		owns   []map[string]string
		leaves []map[string]string
	}{
		{s: unsharded, want: "!" + Label,
			owns:   []map[string]string{nil, {}, {"app": "x"}},
			leaves: []map[string]string{{Label: "blue"}, {Label: ""}}},
		{s: Shard{}, want: "!" + Label, owns: []map[string]string{nil}, leaves: []map[string]string{{Label: "blue"}}},
		{s: blue, want: Label + "=blue",
			owns:   []map[string]string{{Label: "blue", "app": "x"}},
			leaves: []map[string]string{nil, {Label: "green"}, {Label: ""}, {"app": "blue"}}},
	} {
		if got := tc.s.Selector().String(); got != tc.want {
			t.Errorf("shard %q: selector %q, want %q", tc.s.Name(), got, tc.want)
		}
		for _, l := range tc.owns {
			if !tc.s.Owns(l) {
				t.Errorf("shard %q does not own %v", tc.s.Name(), l)
			}
		}
		for _, l := range tc.leaves {
			if tc.s.Owns(l) {
				t.Errorf("shard %q owns %v", tc.s.Name(), l)
			}
		}
	}
}

// Every object is served by exactly one of the managers that run: the
// unsharded one and one per name.
func TestExactlyOneOwner(t *testing.T) {
	var shards []Shard
	for _, n := range []string{"", "a", "b"} {
		s, _ := Parse(n)
		shards = append(shards, s)
	}
	for _, l := range []map[string]string{nil, {Label: "a"}, {Label: "b"}, {"other": "a"}} {
		owners := 0
		for _, s := range shards {
			if s.Owns(l) {
				owners++
			}
		}
		if owners != 1 {
			t.Errorf("labels %v: %d owners, want 1", l, owners)
		}
	}
}

func TestLeaderElectionIDAndUserAgent(t *testing.T) {
	const id = "nodeaction-operator.compute.nodeaction.dev"
	unsharded, _ := Parse("")
	blue, _ := Parse("blue")
	if got := unsharded.LeaderElectionID(id); got != id {
		t.Errorf("unsharded Lease %q, want the default %q (an upgrade keeps its Lease)", got, id)
	}
	if got := blue.LeaderElectionID(id); got != id+"-blue" {
		t.Errorf("shard Lease %q", got)
	}
	if got := unsharded.UserAgent("nodeaction-operator"); got != "nodeaction-operator" {
		t.Errorf("unsharded User-Agent %q", got)
	}
	if got := blue.UserAgent("nodeaction-operator"); got != "nodeaction-operator (shard blue)" {
		t.Errorf("shard User-Agent %q", got)
	}
}

// Only NodeActions and NodeActionSets are filtered in the cache: Providers,
// Nodes and the rest stay whole, whatever the shard.
func TestCacheByObject(t *testing.T) {
	blue, _ := Parse("blue")
	by := blue.CacheByObject()
	if len(by) != 2 {
		t.Fatalf("%d kinds filtered, want NodeActions and NodeActionSets: %v", len(by), by)
	}
	for obj, c := range by {
		switch obj.(type) {
		case *v1alpha1.NodeAction, *v1alpha1.NodeActionSet:
		default:
			t.Errorf("filters %T", obj)
		}
		if c.Label.String() != Label+"=blue" {
			t.Errorf("%T selector %q", obj, c.Label)
		}
	}
}
