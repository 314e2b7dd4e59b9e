package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunWritesRequestedRows(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-rows", "3", "-seed", "9"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d, stderr: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("wrote %d lines, expected a header and 3 rows:\n%s", len(lines), stdout.String())
	}
	if lines[0] != "claim_id,name,date_of_birth,diagnosis_code,amount" {
		t.Errorf("header = %q", lines[0])
	}
}

func TestRunWritesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "claims.csv")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-rows", "2", "-o", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d, stderr: %s", code, stderr.String())
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(content), "\n"); n != 3 {
		t.Errorf("file has %d lines, expected 3", n)
	}
	if stdout.Len() != 0 {
		t.Errorf("wrote %d bytes to stdout with -o", stdout.Len())
	}
}

func TestRunRejectsNegativeRows(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-rows", "-5"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("exit status %d, expected 2", code)
	}
	if !strings.Contains(stderr.String(), "-rows") {
		t.Errorf("stderr %q does not name -rows", stderr.String())
	}
}
