//go:build !race

package controllers

// raceEnabled: the tests run with -race (make test does).
const raceEnabled = false
