package drivertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// The suite calls drivers the way the operator does, so that it can run in
// worlds whose transient errors (proxy errors, held answers) the operator
// is built to ride out: a Retryable error is called again, an Ambiguous
// submission is looked up after the world's settle time.

// patience bounds how long a case keeps calling through transient errors.
const patience = 30 * time.Second

// submit makes one intended submission of req. A Retryable error (the
// provider did not act) is submitted again. After an Ambiguous one (the
// answer was lost) the provider is asked, once the world's settle time has
// passed: the one action found is adopted; none in complete records is
// "not accepted", submitted again. When the provider cannot tell
// (SubmissionUnknown, several candidates, incomplete records) the world
// made the outcome unknowable, an honest answer: the case is skipped.
// Other errors are returned.
func (h Harness) submit(t *testing.T, d provider.Driver, req provider.Request) (provider.Submission, error) {
	t.Helper()
	sub, unknowable, err := h.submitOnce(t, d, req)
	if unknowable != "" {
		t.Skip(unknowable)
	}
	return sub, err
}

// submitOnce is submit, saying why instead of skipping when the world made
// the outcome unknowable.
func (h Harness) submitOnce(t *testing.T, d provider.Driver, req provider.Request) (sub provider.Submission, unknowable string, err error) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(patience)
	for {
		since := time.Now()
		sub, err := d.Submit(ctx, req)
		pe := provider.AsError(err)
		switch {
		case err == nil:
			return sub, "", nil
		case time.Now().After(deadline) || (pe.Kind != provider.Retryable && pe.Kind != provider.Ambiguous):
			return sub, "", err
		case pe.Kind == provider.Retryable:
			time.Sleep(min(max(pe.RetryAfter, 200*time.Millisecond), 10*time.Second))
			continue
		}
		time.Sleep(h.world.Settle())
		found, err := h.lookup(t, d, req, windowFrom(since))
		switch {
		case err != nil && provider.AsError(err).Class == provider.SubmissionUnknown:
			return provider.Submission{}, fmt.Sprintf("%s: the answer to %s was lost (%v) and the provider cannot show whether it was accepted (%v): an honest outcome, not checked further",
				h.world.Name, req.Action, pe, err), nil
		case err != nil:
			return provider.Submission{}, "", err
		case len(found.Candidates) == 1:
			return found.Candidates[0], "", nil
		case len(found.Candidates) > 1 || !found.Complete:
			return provider.Submission{}, fmt.Sprintf("%s: the answer to %s was lost (%v) and the provider's records cannot tell which action was it (%+v): an honest outcome, not checked further",
				h.world.Name, req.Action, pe, found), nil
		}
	}
}

// lookup calls Lookup, again while it fails Retryable, and, as the
// operator does, again while records that show nothing have not settled.
func (h Harness) lookup(t *testing.T, d provider.Driver, req provider.Request, w provider.Window) (provider.Found, error) {
	t.Helper()
	var found provider.Found
	deadline := time.Now().Add(patience)
	for {
		err := retrying(func() error {
			var err error
			found, err = d.Lookup(context.Background(), req, w)
			return err
		})
		wait := time.Until(found.SettlesAt)
		if err != nil || len(found.Candidates) > 0 || !found.Complete || wait <= 0 || time.Now().After(deadline) {
			return found, err
		}
		time.Sleep(min(wait, 5*time.Second))
	}
}

// status calls Status, again while it fails Retryable.
func status(d provider.Driver, sub provider.Submission) (provider.ActionStatus, error) {
	var st provider.ActionStatus
	err := retrying(func() error {
		var err error
		st, err = d.Status(context.Background(), sub)
		return err
	})
	return st, err
}

// probe calls Probe, again while it fails Retryable.
func probe(d provider.Driver) error {
	return retrying(func() error { return d.Probe(context.Background()) })
}

// retrying calls f until it does not fail Retryable, within patience.
func retrying(f func() error) error {
	deadline := time.Now().Add(patience)
	for {
		err := f()
		if err == nil || !provider.IsKind(err, provider.Retryable) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(min(max(provider.AsError(err).RetryAfter, 100*time.Millisecond), 5*time.Second))
	}
}
