package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunFromStandardInput(t *testing.T) {
	input := "claim_id,name,date_of_birth,diagnosis_code,amount\n" +
		"C1,Ada Byron,1961-04-12,I10,10.25\n" +
		"C2,Alan Turing,1954-06-07,E11.9,1.00\n" +
		"C3,Grace Hopper,1946-12-09,I10,0.75\n"
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-"}, strings.NewReader(input), &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d, stderr: %s", code, stderr.String())
	}
	want := "diagnosis_code,claims,total_amount\nE11.9,1,1.00\nI10,2,11.00\n"
	if stdout.String() != want {
		t.Errorf("output =\n%s\nexpected\n%s", stdout.String(), want)
	}
}

func TestRunMalformedRowNamesLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "claims.csv")
	input := "claim_id,name,date_of_birth,diagnosis_code,amount\n" +
		"C1,Ada Byron,1961-04-12,I10,10.25\n" +
		"C2,Alan Turing,1954-06-07,I10,ten\n"
	if err := os.WriteFile(path, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	code := run([]string{path}, nil, &stdout, &stderr)
	if code == 0 {
		t.Fatal("exit status 0, expected a failure")
	}
	if !strings.Contains(stderr.String(), "line 3") {
		t.Errorf("stderr %q does not name line 3", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("wrote %q to stdout, expected nothing", stdout.String())
	}
}

func TestRunUsage(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(nil, nil, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("exit status %d, expected 2", code)
	}
	if !strings.Contains(stderr.String(), "Usage: totals") {
		t.Errorf("stderr %q has no usage", stderr.String())
	}
}
