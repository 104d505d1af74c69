package window

import (
	"os"
	"regexp"
	"testing"
	"time"
)

// Every name the API server accepts in timeZone (the list in
// api/v1alpha1/zz_generated.timezones.go) is one the manager can load, and
// the list is the toolchain's whole tz database (`make generate` writes it).
func TestTheAPIsTimeZonesLoad(t *testing.T) {
	src, err := os.ReadFile("../../api/v1alpha1/zz_generated.timezones.go")
	if err != nil {
		t.Fatal(err)
	}
	rule := regexp.MustCompile(`rule="self in \[([^\]]*)\]"`).FindSubmatch(src)
	if rule == nil {
		t.Fatal("no list in zz_generated.timezones.go")
	}
	names := regexp.MustCompile(`'([^']+)'`).FindAllSubmatch(rule[1], -1)
	if len(names) < 400 {
		t.Fatalf("only %d time zones in the list", len(names))
	}
	seen := map[string]bool{}
	for _, m := range names {
		name := string(m[1])
		if _, err := time.LoadLocation(name); err != nil {
			t.Errorf("%s is in the API's list but does not load: %v", name, err)
		}
		seen[name] = true
	}
	for _, want := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"} {
		if !seen[want] {
			t.Errorf("%s is missing from the list", want)
		}
	}
	if seen["Local"] {
		t.Error("Local is in the list: it would mean the manager's own zone")
	}
}
