package hypervisor

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Limits that Validate enforces.
const (
	MinVCPUs     = 1
	MaxVCPUs     = 255
	MinMemoryMiB = 128
)

// ConfigError reports an invalid [VMConfig] field.
type ConfigError struct {
	// Field is the field name as written in VMConfig, for example
	// "HostData" or "Ports[1].SocketPath".
	Field string
	// Reason describes what is wrong and what is expected.
	Reason string
}

func (e *ConfigError) Error() string {
	return "invalid VM config: " + e.Field + ": " + e.Reason
}

func invalid(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks cfg before any hypervisor is called and returns a
// *[ConfigError] naming the first invalid field. The TEE must be known.
// HostData must be exactly HostDataSize bytes, not all zero, for snp and
// sim-snp, and absent for tdx. VCPUs and MemoryMiB must be within their
// limits. The kernel, initrd and firmware files and every port socket must
// exist, and the guest forward needs an IPv4 address, a port and a command.
func (cfg *VMConfig) Validate() error {
	checks := []func() error{
		cfg.validateTEE,
		cfg.validateSize,
		cfg.validateFiles,
		cfg.validatePorts,
		cfg.validateGuestForward,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (cfg *VMConfig) validateTEE() error {
	switch cfg.TEE {
	case TEESNP, TEESimSNP:
		if cfg.HostData == nil {
			return invalid("HostData", "missing; %s needs the %d-byte job digest", cfg.TEE, HostDataSize)
		}
		if len(cfg.HostData) != HostDataSize {
			return invalid("HostData", "is %d bytes, want exactly %d", len(cfg.HostData), HostDataSize)
		}
		if bytes.Equal(cfg.HostData, make([]byte, HostDataSize)) {
			return invalid("HostData", "is all zero, which binds no job digest")
		}
	case TEETDX:
		if cfg.HostData != nil {
			return invalid("HostData", "set for TEE %q; host data exists only for %q and %q", cfg.TEE, TEESNP, TEESimSNP)
		}
	case "":
		return invalid("TEE", "missing; want %q, %q or %q", TEESNP, TEETDX, TEESimSNP)
	default:
		return invalid("TEE", "unknown TEE %q; want %q, %q or %q", cfg.TEE, TEESNP, TEETDX, TEESimSNP)
	}
	return nil
}

func (cfg *VMConfig) validateSize() error {
	if cfg.VCPUs < MinVCPUs || cfg.VCPUs > MaxVCPUs {
		return invalid("VCPUs", "is %d, want %d to %d", cfg.VCPUs, MinVCPUs, MaxVCPUs)
	}
	if cfg.MemoryMiB < MinMemoryMiB {
		return invalid("MemoryMiB", "is %d, want at least %d", cfg.MemoryMiB, MinMemoryMiB)
	}
	return nil
}

func (cfg *VMConfig) validateFiles() error {
	if cfg.Kernel == "" {
		return invalid("Kernel", "missing; set the path of the guest kernel")
	}
	if err := regularFile("Kernel", cfg.Kernel); err != nil {
		return err
	}
	if cfg.Initrd != "" {
		if err := regularFile("Initrd", cfg.Initrd); err != nil {
			return err
		}
	}
	if cfg.Firmware == "" && (cfg.TEE == TEESNP || cfg.TEE == TEETDX) {
		return invalid("Firmware", "missing; TEE %q measures the firmware at launch", cfg.TEE)
	}
	if cfg.Firmware != "" {
		if err := regularFile("Firmware", cfg.Firmware); err != nil {
			return err
		}
	}
	if strings.ContainsAny(cfg.Cmdline, "\x00\n") {
		return invalid("Cmdline", "contains a NUL or newline character")
	}
	if cfg.ConsoleLog != "" {
		dir := filepath.Dir(cfg.ConsoleLog)
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return invalid("ConsoleLog", "folder %s does not exist", dir)
		}
	}
	return nil
}

func regularFile(field, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return invalid(field, "%v", err)
	}
	if !info.Mode().IsRegular() {
		return invalid(field, "%s is not a regular file", path)
	}
	return nil
}

func (cfg *VMConfig) validatePorts() error {
	seen := make(map[string]bool)
	for i, port := range cfg.Ports {
		field := fmt.Sprintf("Ports[%d]", i)
		if port.Name == "" {
			return invalid(field+".Name", "missing")
		}
		if !validPortName(port.Name) {
			return invalid(field+".Name", "%q contains characters other than letters, digits, '.', '-' and '_'", port.Name)
		}
		if seen[port.Name] {
			return invalid(field+".Name", "%q is used by an earlier port", port.Name)
		}
		seen[port.Name] = true

		if port.SocketPath == "" {
			return invalid(field+".SocketPath", "missing")
		}
		info, err := os.Stat(port.SocketPath)
		if err != nil {
			return invalid(field+".SocketPath", "%v; the launcher must listen on the socket before the VM starts", err)
		}
		if info.Mode()&os.ModeSocket == 0 {
			return invalid(field+".SocketPath", "%s is not a Unix socket", port.SocketPath)
		}
	}
	return nil
}

// validPortName accepts the characters of Cove's port names. The guest
// reads the name from sysfs, and QEMU option values must not carry commas
// or '=' unescaped, so anything else is more likely a mistake than a name.
func validPortName(name string) bool {
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}

func (cfg *VMConfig) validateGuestForward() error {
	fwd := cfg.GuestForward
	if fwd == nil {
		return nil
	}
	addr, err := netip.ParseAddrPort(fwd.GuestAddr)
	if err != nil {
		return invalid("GuestForward.GuestAddr", "%q is not an IPv4 address and port: %v", fwd.GuestAddr, err)
	}
	if !addr.Addr().Is4() || addr.Port() == 0 {
		return invalid("GuestForward.GuestAddr", "%q is not an IPv4 address with a non-zero port", fwd.GuestAddr)
	}
	if len(fwd.Command) == 0 || fwd.Command[0] == "" {
		return invalid("GuestForward.Command", "missing; set the host program that serves the guest's connections")
	}
	for i, arg := range fwd.Command {
		if strings.ContainsAny(arg, "\x00\n") {
			return invalid(fmt.Sprintf("GuestForward.Command[%d]", i), "contains a NUL or newline character")
		}
	}
	return nil
}
