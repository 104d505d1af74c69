package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// floorGrowth (optional, --only floorgrowth): does the API server's own
// floor for an instant action's writes fall with the count stored, or
// with the memory the stored objects take? No manager runs. The floor is
// measured with none stored, with n NodeActions as created (spec only),
// then with the same n carrying a finished action's status (the intent
// and outcome patches the operator writes).
func floorGrowth(n int) []row {
	ctx := context.Background()
	floor := func(what string) float64 {
		c, p := nodeActionWrites(1000, true)
		e := eventCreates(1000)
		f := 1 / (1/c + 2/p + 1/e)
		fmt.Printf("floorgrowth: %s: creates %.0f/s, status patches %.0f/s, events %.0f/s: floor %.0f/s; the API server's heap in use %.0f MiB, its cache consistency checks so far %.0f\n",
			what, c, p, e, f, apiserverCount("go_memstats_heap_inuse_bytes")/(1<<20), apiserverCount("apiserver_storage_consistency_checks_total"))
		return f
	}
	none := floor("none stored")
	ns := namespace("store")
	key := func(i int) (string, string) { return fmt.Sprintf("s-%d", i), strconv.Itoa(300000 + i) }
	d := parallel(n, func(i int) {
		name, vm := key(i)
		createWithRetry(nodeAction(ns, name, vm, "reboot"))
	})
	fmt.Printf("floorgrowth: created %d in %s\n", n, d.Round(time.Second))
	bare := floor(fmt.Sprintf("%d as created", n))
	d = parallel(n, func(i int) {
		name, vm := key(i)
		na := nodeAction(ns, name, vm, "reboot")
		must(kube.Get(ctx, client.ObjectKeyFromObject(na), na))
		must(statusPatch(ctx, na, intentStatus))
		must(statusPatch(ctx, na, outcomeStatus))
	})
	fmt.Printf("floorgrowth: gave %d a finished action's status in %s\n", n, d.Round(time.Second))
	finished := floor(fmt.Sprintf("%d finished", n))
	return []row{
		{fmt.Sprintf("the apiserver's own floor with %d NodeActions stored as created (spec only), no manager", n),
			fmt.Sprintf("%.0f/s = %.2f of the floor with none stored (%.0f/s)", bare, bare/none, none), "-", nil},
		{fmt.Sprintf("the apiserver's own floor with the same %d carrying a finished action's status", n),
			fmt.Sprintf("%.0f/s = %.2f of the floor with none stored", finished, finished/none), "-", nil},
	}
}
