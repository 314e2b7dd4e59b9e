package hypervisor_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cove.dev/cove/internal/testenv"
)

// guestModules are the kernel modules the test guest loads, in order.
var guestModules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "virtio_console", "failover", "net_failover", "virtio_net",
}

var (
	guestInitOnce sync.Once
	guestInitPath string
	guestInitErr  error
)

// buildGuestInit compiles testdata/guestinit once per test binary.
func buildGuestInit(t *testing.T) string {
	t.Helper()
	guestInitOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			guestInitErr = err
			return
		}
		dir, err := os.MkdirTemp("", "cove-guestinit-")
		if err != nil {
			guestInitErr = err
			return
		}
		guestInitPath = filepath.Join(dir, "init")
		cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", guestInitPath, "./testdata/guestinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestInitErr = fmt.Errorf("go build ./testdata/guestinit: %v\n%s", err, out)
		}
	})
	if guestInitErr != nil {
		t.Fatal(guestInitErr)
	}
	return guestInitPath
}

// buildInitramfs returns the guest kernel and the path of a newc cpio
// archive with the test init and the virtio modules of that kernel.
func buildInitramfs(t *testing.T) (kernel, initrd string) {
	t.Helper()
	kernel, modules := testenv.Kernel(t)
	init, err := os.ReadFile(buildGuestInit(t))
	if err != nil {
		t.Fatal(err)
	}

	var archive bytes.Buffer
	w := &cpioWriter{w: &archive}
	w.dir("dev")
	w.charDevice("dev/console", 5, 1)
	w.dir("proc")
	w.dir("sys")
	w.dir("modules")
	w.file("init", 0o755, init)
	for _, name := range guestModules {
		data, err := os.ReadFile(filepath.Join(modules, name+".ko"))
		if os.IsNotExist(err) {
			continue // built into this kernel
		}
		if err != nil {
			t.Fatal(err)
		}
		w.file("modules/"+name+".ko", 0o644, data)
	}
	w.close()
	if w.err != nil {
		t.Fatal(w.err)
	}

	initrd = filepath.Join(t.TempDir(), "initramfs.cpio")
	if err := os.WriteFile(initrd, archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel, initrd
}

// cpioWriter writes the "newc" cpio format that the kernel unpacks as an
// initramfs: a 110-byte ASCII header, the NUL-terminated name and the data,
// each padded to 4 bytes, ended by an entry named TRAILER!!!.
type cpioWriter struct {
	w     io.Writer
	inode int
	err   error
}

const (
	cpioModeDir  = 0o040000
	cpioModeFile = 0o100000
	cpioModeChar = 0o020000
)

func (c *cpioWriter) dir(name string) { c.entry(name, cpioModeDir|0o755, 0, 0, nil) }

func (c *cpioWriter) file(name string, perm int, data []byte) {
	c.entry(name, cpioModeFile|perm, 0, 0, data)
}

func (c *cpioWriter) charDevice(name string, major, minor int) {
	c.entry(name, cpioModeChar|0o600, major, minor, nil)
}

func (c *cpioWriter) close() { c.entry("TRAILER!!!", 0, 0, 0, nil) }

func (c *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor int, data []byte) {
	if c.err != nil {
		return
	}
	c.inode++
	nlink := 1
	if mode&cpioModeDir != 0 {
		nlink = 2
	}
	// Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	header := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	var buf bytes.Buffer
	buf.WriteString(header)
	buf.WriteString(name)
	buf.WriteByte(0)
	pad(&buf)
	buf.Write(data)
	pad(&buf)
	_, c.err = c.w.Write(buf.Bytes())
}

func pad(buf *bytes.Buffer) {
	for buf.Len()%4 != 0 {
		buf.WriteByte(0)
	}
}

// TestCPIOWriterMatchesCPIOTool checks the archive with the cpio program,
// so a format mistake shows up as a listing error instead of a guest that
// does not boot.
func TestCPIOWriterMatchesCPIOTool(t *testing.T) {
	cpio := testenv.Program(t, "COVE_CPIO", "cpio")
	var archive bytes.Buffer
	w := &cpioWriter{w: &archive}
	w.dir("modules")
	w.file("init", 0o755, []byte("#!/bin/sh\n"))
	w.file("modules/a.ko", 0o644, []byte("abc"))
	w.charDevice("console", 5, 1)
	w.close()

	cmd := exec.Command(cpio, "-t", "-v", "--quiet")
	cmd.Stdin = &archive
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	listing := string(out)
	for _, want := range []string{"modules", "init", "modules/a.ko", "console"} {
		if !strings.Contains(listing, want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, listing)
		}
	}
	if !strings.Contains(listing, "-rwxr-xr-x") {
		t.Errorf("cpio listing lacks the init's mode -rwxr-xr-x:\n%s", listing)
	}
	if !strings.Contains(listing, "crw-------") {
		t.Errorf("cpio listing lacks the console's mode crw-------:\n%s", listing)
	}
}
