package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"cove.dev/cove/internal/testenv"
)

func TestWriteIsReproducible(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "init")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Files:    []File{{Path: "/init", Source: src}},
		Dirs:     []string{"/proc", "/sys"},
		Symlinks: map[string]string{"/bin/sh": "busybox"},
	}
	var a, b bytes.Buffer
	if err := Write(&a, spec); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, spec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same spec differ")
	}
}

func TestWriteUnpacksWithCpio(t *testing.T) {
	cpio := testenv.Program(t, "COVE_CPIO", "cpio")
	dir := t.TempDir()
	src := filepath.Join(dir, "payload")
	content := []byte("odd-length content\x00\x01")
	if err := os.WriteFile(src, content, 0o640); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Files:    []File{{Path: "/usr/bin/payload", Source: src, Mode: 0o755}},
		Dirs:     []string{"/proc"},
		Symlinks: map[string]string{"/bin/link": "../usr/bin/payload"},
	}
	var buf bytes.Buffer
	if err := Write(&buf, spec); err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	cmd := exec.Command(cpio, "-idm", "--quiet")
	cmd.Dir = out
	cmd.Stdin = bytes.NewReader(raw)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, msg)
	}
	got, err := os.ReadFile(filepath.Join(out, "usr/bin/payload"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("payload = %q, want %q", got, content)
	}
	st, _ := os.Stat(filepath.Join(out, "usr/bin/payload"))
	if st.Mode().Perm() != 0o755 {
		t.Errorf("payload mode = %v, want 0755", st.Mode().Perm())
	}
	target, err := os.Readlink(filepath.Join(out, "bin/link"))
	if err != nil || target != "../usr/bin/payload" {
		t.Errorf("bin/link -> %q (%v), want ../usr/bin/payload", target, err)
	}
	if st, err := os.Stat(filepath.Join(out, "proc")); err != nil || !st.IsDir() {
		t.Errorf("proc is not a folder: %v", err)
	}
}
