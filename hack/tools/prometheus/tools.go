//go:build tools

// Package tools pins the Prometheus tools the tests run: promtool (`promtool
// test rules` on the alerts) and promqlrefs (this module's reader of PromQL
// queries). They share this module's go.mod, so both use the same parser.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
