// Command guestinit is the init program of the test guest that the QEMU
// driver tests boot. It loads the virtio modules from /modules, opens the
// virtio-serial port named by cove.port= on the kernel command line, writes
// a greeting, and, when cove.dial=ADDR is given, brings up eth0 as
// 10.0.2.15/24, connects to ADDR and writes "forward: " and what it read.
// It then waits for one line from the host and powers off.
//
// It uses only the syscall package so that it builds with CGO_ENABLED=0 and
// no module requirements.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// Greeting is the line the guest writes first on the port.
const Greeting = "hello from the guest"

// moduleOrder lists the modules in dependency order, as the "depends="
// entries of their .modinfo sections give it for Debian 6.1: virtio needs
// virtio_ring.
var moduleOrder = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "virtio_console", "failover", "net_failover", "virtio_net",
}

func main() {
	if err := run(); err != nil {
		fmt.Println("guestinit: " + err.Error())
	}
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println("guestinit: power off: " + err.Error())
	}
	select {}
}

func run() error {
	mounts := []struct{ source, target, fstype string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.source, m.target, m.fstype, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
	}
	if console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		os.Stdout = console
	}

	for _, name := range moduleOrder {
		if err := loadModule("/modules/" + name + ".ko"); err != nil {
			return err
		}
	}

	params, err := cmdlineParams()
	if err != nil {
		return err
	}
	portName := params["cove.port"]
	if portName == "" {
		return fmt.Errorf("cove.port= is missing from the kernel command line")
	}
	port, err := openPort(portName, 20*time.Second)
	if err != nil {
		return err
	}
	defer port.Close()
	fmt.Println("guestinit: opened port " + portName)

	if _, err := io.WriteString(port, Greeting+"\n"); err != nil {
		return fmt.Errorf("write greeting: %w", err)
	}

	if addr := params["cove.dial"]; addr != "" {
		reply, err := dial(addr)
		if err != nil {
			reply = "error: " + err.Error()
		}
		if _, err := io.WriteString(port, "forward: "+reply+"\n"); err != nil {
			return fmt.Errorf("write forward reply: %w", err)
		}
	}

	ack, err := bufio.NewReader(port).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read the host's acknowledgement: %w", err)
	}
	fmt.Println("guestinit: host acknowledged: " + strings.TrimSpace(ack))
	return nil
}

// loadModule loads a kernel module with finit_module. A missing file is
// skipped, because the test copies only the modules it needs.
func loadModule(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	params := []byte{0}
	_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 && errno != syscall.EEXIST {
		return fmt.Errorf("load %s: %w", path, errno)
	}
	return nil
}

func cmdlineParams() (map[string]string, error) {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	params := make(map[string]string)
	for _, field := range strings.Fields(string(raw)) {
		key, value, _ := strings.Cut(field, "=")
		params[key] = value
	}
	return params, nil
}

// openPort waits until a virtio-serial port called name appears and opens
// its device node.
func openPort(name string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, file := range files {
			got, err := os.ReadFile(file)
			if err != nil || strings.TrimSpace(string(got)) != name {
				continue
			}
			dev := "/dev/" + filepath.Base(filepath.Dir(file))
			return os.OpenFile(dev, os.O_RDWR, 0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("no virtio-serial port named %q after %v", name, timeout)
}

// dial brings the network up and returns everything the peer at addr
// sends before it closes the connection.
func dial(addr string) (string, error) {
	if err := setUp("lo", nil, nil); err != nil {
		return "", err
	}
	if err := setUp("eth0", net.IPv4(10, 0, 2, 15).To4(), net.IPv4(255, 255, 255, 0).To4()); err != nil {
		return "", err
	}
	var conn net.Conn
	var err error
	for range 50 {
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(conn)
	return string(got), err
}

// ifreq is struct ifreq of linux/if.h: the interface name, then a union
// whose largest member is 24 bytes.
type ifreq struct {
	name [16]byte
	data [24]byte
}

const (
	siocGIFFLAGS   = 0x8913
	siocSIFFLAGS   = 0x8914
	siocSIFADDR    = 0x8916
	siocSIFNETMASK = 0x891c
)

// sysFinitModule is the finit_module system call number on amd64, which
// the syscall package does not define.
const sysFinitModule = 313

// setUp assigns addr and mask to the interface (unless addr is nil) and
// sets it up.
func setUp(name string, addr, mask net.IP) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)

	ioctl := func(request uintptr, req *ifreq) error {
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), request, uintptr(unsafe.Pointer(req)))
		if errno != 0 {
			return fmt.Errorf("ioctl %#x on %s: %w", request, name, errno)
		}
		return nil
	}
	newReq := func() *ifreq {
		req := &ifreq{}
		copy(req.name[:], name)
		return req
	}
	sockaddr := func(ip net.IP) *ifreq {
		req := newReq()
		req.data[0] = syscall.AF_INET // sin_family, little-endian uint16
		copy(req.data[4:8], ip)
		return req
	}

	if addr != nil {
		if err := ioctl(siocSIFADDR, sockaddr(addr)); err != nil {
			return err
		}
		if err := ioctl(siocSIFNETMASK, sockaddr(mask)); err != nil {
			return err
		}
	}
	req := newReq()
	if err := ioctl(siocGIFFLAGS, req); err != nil {
		return err
	}
	flags := uint16(req.data[0]) | uint16(req.data[1])<<8
	flags |= syscall.IFF_UP | syscall.IFF_RUNNING
	req.data[0], req.data[1] = byte(flags), byte(flags>>8)
	return ioctl(siocSIFFLAGS, req)
}
