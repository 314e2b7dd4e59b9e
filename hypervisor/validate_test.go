package hypervisor_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cove.dev/cove/hypervisor"
)

// validConfig returns a sim-snp configuration whose files and socket exist.
func validConfig(t *testing.T) hypervisor.VMConfig {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	initrd := filepath.Join(dir, "initrd.cpio")
	firmware := filepath.Join(dir, "OVMF.amdsev.fd")
	for _, path := range []string{kernel, initrd, firmware} {
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	socket := filepath.Join(dir, "ctl.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	return hypervisor.VMConfig{
		Kernel:     kernel,
		Initrd:     initrd,
		Cmdline:    "console=ttyS0",
		Firmware:   firmware,
		VCPUs:      2,
		MemoryMiB:  512,
		TEE:        hypervisor.TEESimSNP,
		HostData:   []byte(strings.Repeat("\xab", 32)),
		Ports:      []hypervisor.SerialPort{{Name: "cove.ctl", SocketPath: socket}},
		ConsoleLog: filepath.Join(dir, "console.log"),
		GuestForward: &hypervisor.GuestForward{
			GuestAddr: "10.0.2.100:8443",
			Command:   []string{"/usr/bin/cove", "forward", "127.0.0.1:8443"},
		},
	}
}

func TestValidateAcceptsValidConfig(t *testing.T) {
	cfg := validConfig(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.TEE = hypervisor.TEESNP
	if err := cfg.Validate(); err != nil {
		t.Fatalf("snp: %v", err)
	}
	cfg.TEE, cfg.HostData = hypervisor.TEETDX, nil
	if err := cfg.Validate(); err != nil {
		t.Fatalf("tdx: %v", err)
	}
}

func TestValidateNamesInvalidField(t *testing.T) {
	tests := []struct {
		name   string
		change func(*hypervisor.VMConfig)
		field  string
	}{
		{"host data of 31 bytes", func(c *hypervisor.VMConfig) { c.HostData = c.HostData[:31] }, "HostData"},
		{"host data of 33 bytes", func(c *hypervisor.VMConfig) { c.HostData = append(c.HostData, 0) }, "HostData"},
		{"host data empty", func(c *hypervisor.VMConfig) { c.HostData = []byte{} }, "HostData"},
		{"host data missing for snp", func(c *hypervisor.VMConfig) { c.TEE, c.HostData = "snp", nil }, "HostData"},
		{"host data all zero", func(c *hypervisor.VMConfig) { c.HostData = make([]byte, 32) }, "HostData"},
		{"host data with tdx", func(c *hypervisor.VMConfig) { c.TEE = "tdx" }, "HostData"},
		{"tee missing", func(c *hypervisor.VMConfig) { c.TEE = "" }, "TEE"},
		{"tee unknown", func(c *hypervisor.VMConfig) { c.TEE = "sev" }, "TEE"},
		{"zero vcpus", func(c *hypervisor.VMConfig) { c.VCPUs = 0 }, "VCPUs"},
		{"256 vcpus", func(c *hypervisor.VMConfig) { c.VCPUs = 256 }, "VCPUs"},
		{"127 MiB", func(c *hypervisor.VMConfig) { c.MemoryMiB = 127 }, "MemoryMiB"},
		{"kernel missing", func(c *hypervisor.VMConfig) { c.Kernel = "" }, "Kernel"},
		{"kernel not found", func(c *hypervisor.VMConfig) { c.Kernel += ".gone" }, "Kernel"},
		{"kernel is a folder", func(c *hypervisor.VMConfig) { c.Kernel = filepath.Dir(c.Kernel) }, "Kernel"},
		{"initrd not found", func(c *hypervisor.VMConfig) { c.Initrd += ".gone" }, "Initrd"},
		{"firmware not found", func(c *hypervisor.VMConfig) { c.Firmware += ".gone" }, "Firmware"},
		{"firmware missing for snp", func(c *hypervisor.VMConfig) { c.TEE, c.Firmware = "snp", "" }, "Firmware"},
		{"cmdline with newline", func(c *hypervisor.VMConfig) { c.Cmdline += "\ninit=/bin/sh" }, "Cmdline"},
		{"console folder not found", func(c *hypervisor.VMConfig) { c.ConsoleLog = "/nonexistent/dir/console.log" }, "ConsoleLog"},
		{"port name missing", func(c *hypervisor.VMConfig) { c.Ports[0].Name = "" }, "Ports[0].Name"},
		{"port name with comma", func(c *hypervisor.VMConfig) { c.Ports[0].Name = "a,b" }, "Ports[0].Name"},
		{"port name repeated", func(c *hypervisor.VMConfig) { c.Ports = append(c.Ports, c.Ports[0]) }, "Ports[1].Name"},
		{"socket not found", func(c *hypervisor.VMConfig) { c.Ports[0].SocketPath += ".gone" }, "Ports[0].SocketPath"},
		{"socket is a file", func(c *hypervisor.VMConfig) { c.Ports[0].SocketPath = c.Kernel }, "Ports[0].SocketPath"},
		{"guest address without port", func(c *hypervisor.VMConfig) { c.GuestForward.GuestAddr = "10.0.2.100" }, "GuestForward.GuestAddr"},
		{"guest address IPv6", func(c *hypervisor.VMConfig) { c.GuestForward.GuestAddr = "[fe80::1]:8443" }, "GuestForward.GuestAddr"},
		{"forward command missing", func(c *hypervisor.VMConfig) { c.GuestForward.Command = nil }, "GuestForward.Command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig(t)
			tt.change(&cfg)
			err := cfg.Validate()
			var configErr *hypervisor.ConfigError
			if !errors.As(err, &configErr) {
				t.Fatalf("Validate returned %v, want a *ConfigError", err)
			}
			if configErr.Field != tt.field {
				t.Errorf("error names field %q, want %q (%v)", configErr.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name the field %q", err, tt.field)
			}
		})
	}
}

func TestQEMUArgsForSimSNP(t *testing.T) {
	cfg := validConfig(t)
	cfg.ConsoleLog = filepath.Join(filepath.Dir(cfg.ConsoleLog), "con,sole.log")
	cfg.GuestForward.Command = []string{"/usr/bin/cove", "forward", "a,b", "it's"}
	args, err := hypervisor.QEMUArgs(cfg, hypervisor.AccelTCG)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(args, " ")

	wantPairs := [][2]string{
		{"-accel", "tcg"},
		{"-machine", "q35"},
		{"-m", "512"},
		{"-smp", "2"},
		{"-kernel", cfg.Kernel},
		{"-initrd", cfg.Initrd},
		{"-append", "console=ttyS0"},
		{"-device", "virtio-serial-pci,id=vser0"},
		{"-chardev", "socket,id=port0,path=" + cfg.Ports[0].SocketPath},
		{"-device", "virtserialport,bus=vser0.0,chardev=port0,name=cove.ctl"},
		{"-chardev", "file,id=console0,path=" + strings.ReplaceAll(cfg.ConsoleLog, ",", ",,")},
		{"-serial", "chardev:console0"},
		{"-netdev", `user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:'/usr/bin/cove' 'forward' 'a,,b' 'it'\''s'`},
		{"-device", "virtio-net-pci,netdev=net0,romfile="},
	}
	for _, pair := range wantPairs {
		if !hasPair(args, pair[0], pair[1]) {
			t.Errorf("arguments lack %s %q:\n%s", pair[0], pair[1], joined)
		}
	}
	for _, flag := range []string{"-nographic", "-nodefaults", "-no-reboot"} {
		if !slices.Contains(args, flag) {
			t.Errorf("arguments lack %s:\n%s", flag, joined)
		}
	}
	if slices.Contains(args, "-bios") {
		t.Errorf("sim-snp arguments load firmware, want a direct kernel boot:\n%s", joined)
	}
}

func TestQEMUArgsSNPNeedsKVM(t *testing.T) {
	cfg := validConfig(t)
	cfg.TEE = hypervisor.TEESNP
	if _, err := hypervisor.QEMUArgs(cfg, hypervisor.AccelTCG); err == nil {
		t.Fatal("QEMUArgs accepted snp under tcg, want an error")
	}
	args, err := hypervisor.QEMUArgs(cfg, hypervisor.AccelKVM)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(args, " ")
	// base64 of 32 bytes of 0xab.
	hostData := "host-data=q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="
	if !strings.Contains(joined, "sev-snp-guest,") || !strings.Contains(joined, hostData) {
		t.Errorf("snp arguments lack a sev-snp-guest object with %s:\n%s", hostData, joined)
	}
	if !hasPair(args, "-bios", cfg.Firmware) {
		t.Errorf("snp arguments lack -bios %s:\n%s", cfg.Firmware, joined)
	}
}

func TestGuestForwardCommandQuotesArguments(t *testing.T) {
	got := hypervisor.GuestForwardCommand([]string{"/bin/cove", "two words", "it's", "$HOME"})
	want := `'/bin/cove' 'two words' 'it'\''s' '$HOME'`
	if got != want {
		t.Fatalf("GuestForwardCommand = %s, want %s", got, want)
	}
}

func hasPair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}
