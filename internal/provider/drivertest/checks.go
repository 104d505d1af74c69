package drivertest

import (
	"testing"

	"github.com/nodeaction/nodeaction-operator/internal/fakecloud"
)

// Prepare and Check functions the providers' ActionCases share.

// PoweredOff prepares a VM that is off (before power_on).
func PoweredOff(vm *fakecloud.VM) { vm.Power = fakecloud.PowerOff }

// BootedOnce checks a reboot: the VM booted exactly once.
func BootedOnce(t *testing.T, vm fakecloud.VM) {
	if vm.Boots != 1 {
		t.Errorf("boots = %d, want 1", vm.Boots)
	}
}

// IsOff checks a shutdown or power-off: the VM is off.
func IsOff(t *testing.T, vm fakecloud.VM) {
	if vm.Power != fakecloud.PowerOff {
		t.Error("VM still on after the action")
	}
}
