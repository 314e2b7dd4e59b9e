package hypervisor

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// QEMUArgs returns the qemu-system-x86_64 arguments that run cfg with the
// given accelerator. It validates cfg first. The snp and tdx machines need
// KVM.
//
// The machine is a q35 without default devices or reboot: a guest reboot
// ends QEMU like a poweroff does. Under sim-snp the kernel boots directly
// (-kernel, -initrd, -append) without firmware. Each port becomes a socket
// chardev in client mode plus a virtserialport on one virtio-serial-pci
// controller, and GuestForward becomes a user network with restrict=on and
// one guestfwd rule.
func QEMUArgs(cfg VMConfig, accel string) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if accel != AccelKVM && accel != AccelTCG {
		return nil, fmt.Errorf("unknown QEMU accelerator %q; want %q or %q", accel, AccelKVM, AccelTCG)
	}
	if (cfg.TEE == TEESNP || cfg.TEE == TEETDX) && accel != AccelKVM {
		return nil, fmt.Errorf("TEE %q needs the KVM accelerator, but %s was selected", cfg.TEE, accel)
	}

	machine := "q35"
	args := []string{"-accel", accel}
	if accel == AccelKVM {
		args = append(args, "-cpu", "host")
	}
	switch cfg.TEE {
	case TEESNP:
		machine += ",confidential-guest-support=sev0,memory-backend=ram0"
		args = append(args,
			"-object", fmt.Sprintf("memory-backend-memfd,id=ram0,size=%dM,share=true", cfg.MemoryMiB),
			// NOTE: cbitpos=51 is the C-bit position of EPYC Milan and Genoa
			// (CPUID 0x8000001F EBX). This path needs QEMU 9.1 or later and
			// has not been run on SEV-SNP hardware.
			"-object", "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on,host-data="+
				base64.StdEncoding.EncodeToString(cfg.HostData),
			"-bios", cfg.Firmware)
	case TEETDX:
		machine += ",confidential-guest-support=tdx0,kernel-irqchip=split"
		args = append(args, "-object", "tdx-guest,id=tdx0", "-bios", cfg.Firmware)
	}

	args = append(args,
		"-machine", machine,
		"-nographic", "-nodefaults", "-no-reboot", "-monitor", "none",
		"-m", strconv.Itoa(cfg.MemoryMiB),
		"-smp", strconv.Itoa(cfg.VCPUs),
	)
	if cfg.ConsoleLog != "" {
		args = append(args,
			"-chardev", "file,id=console0,path="+escapeOptionValue(cfg.ConsoleLog),
			"-serial", "chardev:console0")
	} else {
		args = append(args, "-serial", "null")
	}

	args = append(args, "-kernel", cfg.Kernel)
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	if cfg.Cmdline != "" {
		args = append(args, "-append", cfg.Cmdline)
	}

	if len(cfg.Ports) > 0 {
		args = append(args, "-device", "virtio-serial-pci,id=vser0")
	}
	for i, port := range cfg.Ports {
		id := "port" + strconv.Itoa(i)
		args = append(args,
			"-chardev", "socket,id="+id+",path="+escapeOptionValue(port.SocketPath),
			"-device", "virtserialport,bus=vser0.0,chardev="+id+",name="+port.Name)
	}

	if fwd := cfg.GuestForward; fwd != nil {
		netdev := "user,id=net0,restrict=on,guestfwd=tcp:" + fwd.GuestAddr +
			"-cmd:" + escapeOptionValue(GuestForwardCommand(fwd.Command))
		// romfile= drops the iPXE option ROM: the kernel boots directly,
		// and loading iPXE costs seconds under TCG.
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=")
	}
	return args, nil
}

// GuestForwardCommand returns argv as the single string that a QEMU
// guestfwd cmd: rule takes. libslirp splits that string with GLib's
// g_shell_parse_argv, which follows shell quoting but runs no shell, so
// every argument is put in single quotes, and a single quote inside an
// argument ends the quoted part, is escaped with a backslash and starts a
// new one. TestQEMUGuestForwardKeepsArguments checks this against libslirp
// 4.7.0.
func GuestForwardCommand(argv []string) string {
	quoted := make([]string, len(argv))
	for i, arg := range argv {
		quoted[i] = "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// escapeOptionValue doubles every comma, which is how QEMU's option parser
// reads a literal comma inside a key=value list.
func escapeOptionValue(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}
