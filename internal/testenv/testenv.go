// Package testenv finds the external programs and files that Cove's tests
// need (Vault, QEMU, the guest kernel, OVMF). The scripts under test/infra
// install them and print their locations as environment variables.
//
// A test whose dependency is missing is skipped on a developer machine but
// fails when CI=true, so CI never passes by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"cove.dev/cove/internal/cachedir"
)

// Missing skips t, or fails it under CI=true, with a message that names
// what is missing and how to install it.
func Missing(t testing.TB, what string) {
	t.Helper()
	msg := what + " is missing; run test/infra/deps.sh (or make deps) to install it"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// File returns the path in the environment variable name, or the first of
// the fallbacks that exists. It calls Missing when none exists.
func File(t testing.TB, name string, fallbacks ...string) string {
	t.Helper()
	if p := os.Getenv(name); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		Missing(t, name+"="+p)
		return ""
	}
	for _, p := range fallbacks {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Missing(t, name)
	return ""
}

// Program returns the path of an executable named in the environment
// variable name, found on PATH as prog, or at one of the fallbacks.
func Program(t testing.TB, name, prog string, fallbacks ...string) string {
	t.Helper()
	if p := os.Getenv(name); p == "" {
		if found, err := exec.LookPath(prog); err == nil {
			return found
		}
	}
	return File(t, name, fallbacks...)
}

// CacheDir returns the folder where test/infra/deps.sh caches downloads
// and builds.
func CacheDir() string { return cachedir.Dir() }

// SkipShort skips t under go test -short, for tests that boot a VM or
// start Vault; make test-unit runs the suite that way.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the test needs " + what)
	}
}

// Vault returns the path of the Vault server binary built by
// test/infra/deps.sh.
func Vault(t testing.TB) string {
	t.Helper()
	SkipShort(t, "a Vault server")
	return File(t, "COVE_VAULT", filepath.Join(CacheDir(), "vault", "vault"))
}

// Kernel returns the guest kernel (Debian's vmlinuz) and the folder of
// the kernel modules the guest loads.
func Kernel(t testing.TB) (vmlinuz, modules string) {
	t.Helper()
	SkipShort(t, "a VM")
	vmlinuz = File(t, "COVE_KERNEL", filepath.Join(CacheDir(), "kernel", "vmlinuz"))
	modules = File(t, "COVE_KERNEL_MODULES", filepath.Join(CacheDir(), "kernel", "modules"))
	return vmlinuz, modules
}

// OVMF returns Debian's OVMF.amdsev.fd.
func OVMF(t testing.TB) string {
	t.Helper()
	return File(t, "COVE_OVMF", filepath.Join(CacheDir(), "ovmf", "OVMF.amdsev.fd"))
}

// QEMU returns the path of qemu-system-x86_64.
func QEMU(t testing.TB) string {
	t.Helper()
	SkipShort(t, "a VM")
	return Program(t, "COVE_QEMU", "qemu-system-x86_64")
}
