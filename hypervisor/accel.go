package hypervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// QEMU accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// AccelEnv is the environment variable that forces the QEMU accelerator
// ("kvm" or "tcg") and skips detection.
const AccelEnv = "COVE_QEMU_ACCEL"

// DefaultProbeTimeout is how long [DetectAccel] waits for the first kernel
// message under KVM. By estimate, a kernel that runs under KVM prints its
// banner well under a second after start, so the timeout leaves room for a
// loaded host.
const DefaultProbeTimeout = 5 * time.Second

// kernelBanner starts the first message of every Linux kernel.
var kernelBanner = []byte("Linux version ")

type probeKey struct{ binary, kernel string }

type probeResult struct {
	once  sync.Once
	accel string
	err   error
}

var (
	probeMu    sync.Mutex
	probeCache = map[probeKey]*probeResult{}
)

// DetectAccel returns the accelerator that boots kernel with the QEMU at
// binary: AccelKVM when a VM under KVM prints the kernel's first message
// within timeout, otherwise AccelTCG. The result is cached per binary and
// kernel for the life of the process, so only the first call pays for the
// probe.
//
// Opening /dev/kvm is not enough: some hosts offer a paravirtualized KVM
// that runs the firmware but never the kernel, so the probe boots the real
// kernel with an early serial console and watches for its banner.
func DetectAccel(ctx context.Context, binary, kernel string, timeout time.Duration) (string, error) {
	key := probeKey{binary, kernel}
	probeMu.Lock()
	result, ok := probeCache[key]
	if !ok {
		result = &probeResult{}
		probeCache[key] = result
	}
	probeMu.Unlock()

	result.once.Do(func() {
		result.accel, result.err = probeAccel(ctx, binary, kernel, timeout)
	})
	if result.err != nil {
		// A failed probe (for example a cancelled context) is not cached.
		probeMu.Lock()
		delete(probeCache, key)
		probeMu.Unlock()
	}
	return result.accel, result.err
}

func probeAccel(parent context.Context, binary, kernel string, timeout time.Duration) (string, error) {
	kvm, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return AccelTCG, nil
	}
	kvm.Close()

	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()

	cmd := exec.Command(binary,
		"-accel", "kvm", "-cpu", "host", "-machine", "q35",
		"-nographic", "-nodefaults", "-no-reboot", "-monitor", "none",
		"-m", "128", "-smp", "1",
		"-serial", "stdio",
		"-kernel", kernel,
		"-append", "console=ttyS0 earlycon=uart8250,io,0x3f8 panic=-1",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("probe the KVM accelerator: %w", err)
	}
	found := make(chan bool, 1)
	go func() { found <- watchFor(stdout, kernelBanner) }()

	var booted bool
	select {
	case booted = <-found:
	case <-ctx.Done():
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()

	if booted {
		return AccelKVM, nil
	}
	if err := parent.Err(); err != nil {
		return "", fmt.Errorf("probe the KVM accelerator: %w", err)
	}
	return AccelTCG, nil
}

// watchFor reads r until it contains marker or ends.
func watchFor(r io.Reader, marker []byte) bool {
	var window []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		window = append(window, buf[:n]...)
		if bytes.Contains(window, marker) {
			return true
		}
		if keep := len(marker) - 1; len(window) > keep {
			window = window[len(window)-keep:]
		}
		if err != nil {
			return false
		}
	}
}
