package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ModuleOrder lists the kernel modules the guest loads, in dependency
// order. Debian's 6.1 kernel builds these as modules; a module that is
// absent from the initramfs is skipped, since another kernel may build it
// in.
var ModuleOrder = []string{
	"virtio_ring.ko", "virtio.ko", "virtio_pci_modern_dev.ko", "virtio_pci_legacy_dev.ko",
	"virtio_pci.ko", "virtio_console.ko", "failover.ko", "net_failover.ko", "virtio_net.ko",
}

// PrepareInit does what an init process must before the agent runs: it
// mounts /proc, /sys, /dev and /run, loads the virtio modules from
// /lib/modules and brings up the network that reaches the broker.
func PrepareInit() error {
	mounts := []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/run", "tmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := loadModules("/lib/modules"); err != nil {
		return err
	}
	return setupNetwork()
}

func loadModules(dir string) error {
	for _, name := range ModuleOrder {
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	return nil
}

// setupNetwork gives the first Ethernet interface the guest's fixed
// address on QEMU's user network, using busybox's ip applet.
func setupNetwork() error {
	dev, err := waitForInterface(5 * time.Second)
	if err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", GuestAddr, "dev", dev},
		{"ip", "link", "set", dev, "up"},
	}
	for _, args := range steps {
		out, err := exec.Command("/bin/busybox", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func waitForInterface(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		entries, _ := os.ReadDir("/sys/class/net")
		var names []string
		for _, e := range entries {
			if e.Name() != "lo" {
				names = append(names, e.Name())
			}
		}
		if len(names) > 0 {
			sort.Strings(names)
			return names[0], nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no network interface appeared within %v; is virtio_net in the initramfs?", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PowerOff flushes file systems and powers the VM off. It does not return
// unless the reboot call fails.
func PowerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// OpenPort opens the virtio-serial port with the given name, waiting for
// it to appear.
func OpenPort(name string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		entries, _ := os.ReadDir("/sys/class/virtio-ports")
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
			if err != nil || strings.TrimSpace(string(b)) != name {
				continue
			}
			return os.OpenFile(filepath.Join("/dev", e.Name()), os.O_RDWR, 0)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("virtio-serial port %q did not appear within %v", name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
