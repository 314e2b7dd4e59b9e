package hypervisor

import (
	"encoding/hex"
	"encoding/json"
	"path/filepath"
)

// The types below are the parts of Cloud Hypervisor's VmConfig schema that
// Cove fills.

type chVMConfig struct {
	Cpus     chCpus      `json:"cpus"`
	Memory   chMemory    `json:"memory"`
	Payload  chPayload   `json:"payload"`
	Serial   chConsole   `json:"serial"`
	Console  chConsole   `json:"console"`
	Vsock    *chVsock    `json:"vsock,omitempty"`
	Platform *chPlatform `json:"platform,omitempty"`
}

type chCpus struct {
	BootVcpus int `json:"boot_vcpus"`
	MaxVcpus  int `json:"max_vcpus"`
}

type chMemory struct {
	Size int64 `json:"size"` // bytes
}

type chPayload struct {
	Firmware  string `json:"firmware,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	Cmdline   string `json:"cmdline,omitempty"`
	Initramfs string `json:"initramfs,omitempty"`
	Igvm      string `json:"igvm,omitempty"`
	HostData  string `json:"host_data,omitempty"`
}

type chConsole struct {
	Mode string `json:"mode"` // "Off", "Pty", "Tty", "File", "Socket" or "Null"
	File string `json:"file,omitempty"`
}

type chVsock struct {
	Cid    int64  `json:"cid"`
	Socket string `json:"socket"`
}

type chPlatform struct {
	SevSnp bool `json:"sev_snp,omitempty"`
	Tdx    bool `json:"tdx,omitempty"`
}

// CloudHypervisorGuestCID is the vsock context id of the guest. The first
// id that a guest may use is 3.
const CloudHypervisorGuestCID = 3

// CloudHypervisorCreateBody validates cfg and returns the vm.create body
// (a VmConfig as JSON) that runs it under Cloud Hypervisor.
//
//   - snp sets platform.sev_snp, boots Firmware as payload.igvm, which must
//     be an IGVM image, and puts HostData in payload.host_data as 64
//     lowercase hex characters.
//   - tdx sets platform.tdx and boots Firmware (the TD firmware) as
//     payload.firmware.
//   - sim-snp boots Kernel directly. HostData stays on the host, where the
//     software SEV-SNP device uses it, because Cloud Hypervisor accepts
//     host_data only with SEV-SNP.
//
// The serial console goes to ConsoleLog and the virtio console is off.
// Cloud Hypervisor has one virtio console and no named virtio-serial
// ports, so Ports become one vsock device whose socket,
// vsock.sock, sits next to the first port's socket. Cloud Hypervisor has no
// user networking either, so GuestForward is left out.
func CloudHypervisorCreateBody(cfg VMConfig) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	body := chVMConfig{
		Cpus:    chCpus{BootVcpus: cfg.VCPUs, MaxVcpus: cfg.VCPUs},
		Memory:  chMemory{Size: int64(cfg.MemoryMiB) << 20},
		Serial:  chConsole{Mode: "Null"},
		Console: chConsole{Mode: "Off"},
		Payload: chPayload{Kernel: cfg.Kernel, Cmdline: cfg.Cmdline, Initramfs: cfg.Initrd},
	}
	if cfg.ConsoleLog != "" {
		body.Serial = chConsole{Mode: "File", File: cfg.ConsoleLog}
	}

	switch cfg.TEE {
	case TEESNP:
		// NOTE: not run against a SEV-SNP host. Whether Cloud Hypervisor
		// takes kernel, initramfs and cmdline next to an IGVM image (through
		// fw_cfg) depends on the stage0 image and is unverified.
		body.Platform = &chPlatform{SevSnp: true}
		body.Payload.Igvm = cfg.Firmware
		body.Payload.HostData = hex.EncodeToString(cfg.HostData)
	case TEETDX:
		body.Platform = &chPlatform{Tdx: true}
		body.Payload.Firmware = cfg.Firmware
	}

	if len(cfg.Ports) > 0 {
		// NOTE: Cloud Hypervisor forwards a guest connection to vsock port P
		// to the Unix socket "<socket>_P" on the host. No vsock port numbers
		// are assigned to Cove's port names yet, so the guest agent cannot
		// use this device until they are.
		body.Vsock = &chVsock{
			Cid:    CloudHypervisorGuestCID,
			Socket: filepath.Join(filepath.Dir(cfg.Ports[0].SocketPath), "vsock.sock"),
		}
	}
	return json.MarshalIndent(body, "", "  ")
}
