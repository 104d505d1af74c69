package cloudsfor

import (
	"context"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

const (
	// globalActionsPath is the seed's "global actions endpoint", which it
	// names without a path: the one PROVIDERS.md and the fakecloud skin
	// assume.
	globalActionsPath = "/api/v1/actions"
	// batchPerPage is the largest page the account's list serves (the seed
	// names none; the skin, like DigitalOcean, caps per_page at 200).
	batchPerPage = 200
	// batchPages bounds one sweep to as many actions as one Status may read
	// on one VM (maxPages pages of perPage).
	batchPages = maxPages * perPage / batchPerPage
)

// matchKey is what finds a submission's actions in the account's list: the
// VM (an action's id), the type and the start, to the second (sameStart
// then compares the starts as Status does).
type matchKey struct {
	node, typ string
	second    int64
}

// StatusBatch finds each submission in the account's action list by VM,
// type and started_at, as Status finds it in the VM's list, and judges it
// with statusOf. A submission is answered only when the pages read hold
// every action that could match it. One the list does not show is left
// out, not judged late or gone: Status, reading it alone, decides that.
func (d *Driver) StatusBatch(ctx context.Context, subs []provider.Submission) ([]provider.ActionStatus, error) {
	out := make([]provider.ActionStatus, len(subs))
	starts := make([]time.Time, len(subs))
	want := map[matchKey][]int{} // indexes in subs
	var oldest time.Time
	for i, s := range subs {
		started, ok := startedOf(s)
		if !ok || d.Validate(s.Request) != nil {
			continue // Status answers these with an error
		}
		starts[i] = started
		k := matchKey{s.NodeID, s.Action, started.Unix()}
		want[k] = append(want[k], i)
		if oldest.IsZero() || started.Before(oldest) {
			oldest = started
		}
	}
	if len(want) == 0 {
		return out, nil
	}
	matches := make([][]action, len(subs))
	// A sweep reads no more pages than the reads alone it replaces (two at
	// least: an oldest-first list needs its first and its last page).
	pages := min(batchPages, max(2, len(want)))
	read, err := d.walkAccount(ctx, oldest, pages, func(a action, at time.Time) {
		for _, i := range want[matchKey{a.ID, a.Type, at.Unix()}] {
			if sameStart(at, starts[i]) {
				matches[i] = append(matches[i], a)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for i, m := range matches {
		if len(m) == 0 || !read.holds(starts[i]) {
			continue
		}
		st, err := d.statusOf(ctx, subs[i], starts[i], m)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// A VM read-back failed: left out, Status meets the error for
			// this action alone rather than failing every sweep.
			continue
		}
		out[i] = st
	}
	return out, nil
}

// coverage is the part of the account's list a walk read in full: all of
// it, or every action started in a later second than after (nothing when
// after is zero).
type coverage struct {
	all   bool
	after time.Time
}

func (c coverage) holds(t time.Time) bool {
	return c.all || (!c.after.IsZero() && t.Unix() > c.after.Unix())
}

// listOrder is the order a page of the account's list shows.
type listOrder int

const (
	listUnknown listOrder = iota
	listNewestFirst
	listOldestFirst
)

// walkAccount reads the account's action list, batchPerPage actions a page
// and at most pageLimit pages, passes visit every action whose started_at
// reads, and says what it read in full.
//
// Neither the seed nor anything else fixes the list's order, so the first
// page shows it, by started_at. Newest first: read on until a page starts
// in an earlier second than oldest. Oldest first: jump to the last page and
// read backward the same way. Any other order, or a page that breaks the
// one detected: only the whole list, within the bound, answers anything.
func (d *Driver) walkAccount(ctx context.Context, oldest time.Time, pageLimit int, visit func(a action, at time.Time)) (coverage, error) {
	// read reads a page, visits it and returns its starts in its order.
	read := func(page int) (actionList, []time.Time, error) {
		list, err := d.listPage(ctx, globalActionsPath, "", page, batchPerPage)
		if err != nil {
			return actionList{}, nil, err
		}
		var times []time.Time
		for _, a := range list.Actions {
			if at, ok := parseTime(a.StartedAt); ok {
				visit(a, at)
				times = append(times, at)
			}
		}
		return list, times, nil
	}
	first, times, err := read(1)
	if err != nil {
		return coverage{}, err
	}
	if !first.more(1, batchPerPage) {
		return coverage{all: true}, nil
	}
	order, last := orderOf(times), first.lastPage()
	_, firstLatest := span(times, order)
	// floor is the earliest start read from the list's newest end on,
	// once that end is read (newest).
	var floor time.Time
	newest := false
	page := 2
	switch {
	case order == listNewestFirst:
		floor, _ = span(times, order)
		newest = true
	case order == listOldestFirst && last > 1:
		page = last
	default:
		order = listUnknown
		if last > pageLimit {
			return coverage{}, nil // too long to read whole
		}
	}
	for n := 2; ; n++ { // n: the pages read, this one included
		switch {
		case newest && floor.Unix() < oldest.Unix():
			return coverage{after: floor}, nil // older pages hold no submission
		case n > pageLimit && newest:
			return coverage{after: floor}, nil
		case n > pageLimit:
			return coverage{}, nil
		}
		list, times, err := read(page)
		if err != nil {
			return coverage{}, err
		}
		more := list.more(page, batchPerPage)
		if order == listUnknown {
			if !more {
				return coverage{all: true}, nil
			}
			page++
			continue
		}
		jumped := order == listOldestFirst && page == last
		if jumped && more {
			return coverage{}, nil // the list grew past its last page: its newest end is unread
		}
		if len(times) > 0 {
			// Each page must be sorted, older than the pages read after
			// page 1 and, oldest first, newer than page 1; else the order
			// broke and nothing read can be trusted.
			lo, hi := span(times, order)
			if !sortedAs(times, order) || !jumped && hi.After(floor) || order == listOldestFirst && lo.Before(firstLatest) {
				return coverage{}, nil
			}
			floor = lo
		}
		newest = newest || jumped
		switch {
		case order == listNewestFirst && !more:
			return coverage{all: true}, nil // pages 1 to this one: the whole list
		case order == listNewestFirst:
			page++
		case page == 2:
			return coverage{all: true}, nil // page 1 was read first
		default:
			page--
		}
	}
}

// orderOf tells a page sorted by start, newest or oldest first, from any
// other (or one whose starts are all alike, or too few, to tell).
func orderOf(times []time.Time) listOrder {
	asc, desc := sortedAs(times, listOldestFirst), sortedAs(times, listNewestFirst)
	switch {
	case asc && !desc:
		return listOldestFirst
	case desc && !asc:
		return listNewestFirst
	}
	return listUnknown
}

// sortedAs tells whether times follow order (equal starts may come in any
// order).
func sortedAs(times []time.Time, order listOrder) bool {
	for i := 1; i < len(times); i++ {
		if order == listOldestFirst && times[i].Before(times[i-1]) || order == listNewestFirst && times[i].After(times[i-1]) {
			return false
		}
	}
	return true
}

// span is the earliest and latest of a page's starts sorted in order.
func span(times []time.Time, order listOrder) (lo, hi time.Time) {
	if len(times) == 0 {
		return time.Time{}, time.Time{}
	}
	lo, hi = times[0], times[len(times)-1]
	if order == listNewestFirst {
		lo, hi = hi, lo
	}
	return lo, hi
}
