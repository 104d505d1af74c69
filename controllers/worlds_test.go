package controllers

import (
	"net/http/httptest"
	"testing"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// worldCloud is a fakecloud served on loopback, in one test world.
type worldCloud struct {
	world fakecloud.TestWorld
	cloud *fakecloud.Cloud
	url   string
}

// suiteWorldCloud is the suite's shared cloud, in the default world.
func suiteWorldCloud() worldCloud {
	return worldCloud{world: fakecloud.DefaultTestWorld(), cloud: cloud, url: cloudURL}
}

// newWorldCloud serves a cloud of its own in world w for one test.
func newWorldCloud(t *testing.T, w fakecloud.TestWorld) worldCloud {
	t.Helper()
	c := fakecloud.New(w.Apply(suiteCloudOptions()))
	server := httptest.NewServer(c.Handler())
	t.Cleanup(server.Close)
	return worldCloud{world: w, cloud: c, url: server.URL}
}

// inEachWorld runs f in each world fakecloud.TestWorlds names: the default
// one on the suite's shared cloud under the test's own name, any other on a
// cloud of its own as the subtest "world=<name>", one after the other. A
// failure names the world and how to run it again.
func inEachWorld(t *testing.T, f func(t *testing.T, wc worldCloud)) {
	worlds, err := fakecloud.TestWorlds()
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, wc worldCloud) {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s", wc.world)
			}
		})
		f(t, wc)
	}
	for _, w := range worlds {
		if w.Default {
			run(t, suiteWorldCloud())
			continue
		}
		t.Run("world="+w.Name, func(t *testing.T) { run(t, newWorldCloud(t, w)) })
	}
}
