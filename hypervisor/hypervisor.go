// Package hypervisor starts and stops the virtual machine that runs a job.
//
// A launcher fills a [VMConfig], checks it with [VMConfig.Validate] (every
// driver does that again before it touches a hypervisor) and hands it to a
// [Driver]:
//
//   - [QEMU] runs qemu-system-x86_64. It is the driver for the emulated
//     machines used in development and CI, and it detects which accelerator
//     really boots a guest kernel (see [DetectAccel]).
//   - [CloudHypervisor] runs cloud-hypervisor and drives it through its REST
//     API with a [CloudHypervisorClient]. [CloudHypervisorCreateBody] returns
//     the vm.create request body for a configuration without starting
//     anything.
//
// # Guest channel
//
// The launcher listens on one Unix socket per virtio-serial port before it
// calls [Driver.Start]; the hypervisor connects to each socket as a client,
// and the guest opens the port by its name (for example cove.ctl). The
// guest reaches exactly one host service through QEMU user networking when
// [VMConfig.GuestForward] is set.
package hypervisor

import (
	"context"
)

// TEE names accepted in [VMConfig.TEE].
const (
	// TEESNP is AMD SEV-SNP hardware.
	TEESNP = "snp"
	// TEETDX is Intel TDX hardware.
	TEETDX = "tdx"
	// TEESimSNP is Cove's software SEV-SNP device: the VM itself is an
	// ordinary emulated machine and the launcher signs reports on the host.
	TEESimSNP = "sim-snp"
)

// HostDataSize is the size in bytes of SEV-SNP HOST_DATA, which carries the
// job digest into every attestation report of the guest.
const HostDataSize = 32

// VMConfig describes one virtual machine.
type VMConfig struct {
	// Kernel is the path of the guest kernel (bzImage). Required.
	Kernel string
	// Initrd is the path of the initramfs. Optional.
	Initrd string
	// Cmdline is the kernel command line.
	Cmdline string

	// Firmware is the path of the firmware that the TEE launch measures, for
	// example OVMF.amdsev.fd. Required for snp and tdx. The QEMU driver boots
	// a sim-snp VM directly from Kernel and ignores Firmware, because the
	// emulated machine measures nothing.
	Firmware string

	// VCPUs is the number of virtual CPUs, 1 to 255.
	VCPUs int
	// MemoryMiB is the guest memory in MiB, at least 128.
	MemoryMiB int

	// TEE is one of TEESNP, TEETDX or TEESimSNP.
	TEE string
	// HostData is the job digest bound into the launch: exactly
	// HostDataSize bytes for snp and sim-snp, and nil for tdx.
	HostData []byte

	// Ports are the virtio-serial ports of the guest channel.
	Ports []SerialPort
	// GuestForward, when set, gives the guest one TCP address that reaches a
	// host program. Nil means the VM has no network device.
	GuestForward *GuestForward

	// ConsoleLog is the file that receives the serial console (ttyS0). Empty
	// means the console output is discarded.
	ConsoleLog string
}

// SerialPort is a virtio-serial port backed by a Unix socket on the host.
type SerialPort struct {
	// Name is the port name that the guest sees in
	// /sys/class/virtio-ports/*/name, for example "cove.ctl".
	Name string
	// SocketPath is a Unix socket on which the launcher already listens. The
	// hypervisor connects to it as a client when the VM starts.
	SocketPath string
}

// GuestForward makes one guest address reach a host program: QEMU starts
// Command for every TCP connection the guest opens to GuestAddr and joins the
// connection to the program's standard input and output.
type GuestForward struct {
	// GuestAddr is the IPv4 address and port inside the user network, for
	// example "10.0.2.100:8443".
	GuestAddr string
	// Command is the program and its arguments, for example
	// ["/usr/bin/cove", "forward", "127.0.0.1:8443"].
	Command []string
}

// Driver runs one virtual machine. A Driver value is used for one VM: Start
// once, then Wait, and Stop at any time.
type Driver interface {
	// Start validates cfg, creates the VM and boots it. The VM is killed when
	// ctx is cancelled, even after Start has returned.
	Start(ctx context.Context, cfg VMConfig) error
	// Wait blocks until the VM powers off (guest poweroff or reboot) and
	// returns nil for a clean exit. When ctx is done first, Wait stops the VM
	// and returns the context's error.
	Wait(ctx context.Context) error
	// Stop kills the VM and waits until the hypervisor has exited. Calling it
	// again, or before Start, returns nil.
	Stop(ctx context.Context) error
}
