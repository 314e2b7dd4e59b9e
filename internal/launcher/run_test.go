package launcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cove.dev/cove/hypervisor"
	"cove.dev/cove/internal/channel"
	"cove.dev/cove/internal/jobspec"
)

// fakeGuest is a Driver whose "VM" is a goroutine that speaks the guest's
// side of the channel: it reads the manifest and the input, then sends
// output bytes and a transcript chosen by the test.
type fakeGuest struct {
	output     []byte
	transcript channel.Transcript
	gotInput   chan []byte
	gotManif   chan channel.Manifest
	done       chan struct{}
	// skipTranscript makes the guest stop without sending a transcript.
	skipTranscript bool
	// afterTranscript, when not nil, runs after the transcript is sent and
	// before the guest closes its ports.
	afterTranscript func(conns map[string]net.Conn)
	// keepOpen names a port whose connection the guest leaves open when it
	// stops, and sends on kept.
	keepOpen string
	kept     chan net.Conn
}

func (g *fakeGuest) Start(ctx context.Context, cfg hypervisor.VMConfig) error {
	g.done = make(chan struct{})
	conns := map[string]net.Conn{}
	for _, p := range cfg.Ports {
		c, err := net.Dial("unix", p.SocketPath)
		if err != nil {
			return err
		}
		conns[p.Name] = c
	}
	go func() {
		defer close(g.done)
		defer func() {
			for name, c := range conns {
				if name == g.keepOpen {
					g.kept <- c
					continue
				}
				c.Close()
			}
		}()
		var m channel.Manifest
		if err := channel.ReadJSON(conns[channel.PortControl], &m); err != nil {
			return
		}
		g.gotManif <- m
		in := make([]byte, m.InputSizes[0])
		if _, err := readFull(conns[channel.PortInput], in); err != nil {
			return
		}
		g.gotInput <- in
		channel.WriteJSON(conns[channel.PortControl], channel.Message{Event: channel.EventAttesting})
		channel.WriteJSON(conns[channel.PortControl], channel.Message{Event: channel.EventKeysReleased})
		conns[channel.PortOutput].Write(g.output)
		if g.skipTranscript {
			return
		}
		tr := g.transcript
		channel.WriteJSON(conns[channel.PortControl], channel.Message{Transcript: &tr})
		if g.afterTranscript != nil {
			g.afterTranscript(conns)
		}
	}()
	return nil
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (g *fakeGuest) Wait(ctx context.Context) error {
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *fakeGuest) Stop(ctx context.Context) error { return nil }

func testPlan(t *testing.T, input []byte) *Plan {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "in.cove")
	if err := os.WriteFile(path, input, 0o600); err != nil {
		t.Fatal(err)
	}
	canonical := []byte(`{"cove_job":1}`)
	return &Plan{
		Spec:      &jobspec.Spec{Name: "t", Dir: dir, KBS: jobspec.KBS{URL: "https://127.0.0.1:8443/kbs"}},
		Canonical: canonical,
		Digest:    jobspec.Digest(canonical),
		Inputs:    []PlannedInput{{Name: "claims", Path: path, Size: int64(len(input))}},
	}
}

func runFake(t *testing.T, g *fakeGuest, input []byte) (*Result, string, error) {
	t.Helper()
	return runFakeWithOldOutput(t, g, input, nil)
}

// runFakeWithOldOutput runs g after writing old, when not nil, where the
// output goes, as an earlier run of the job would have left it.
func runFakeWithOldOutput(t *testing.T, g *fakeGuest, input, old []byte) (*Result, string, error) {
	t.Helper()
	g.gotInput = make(chan []byte, 1)
	g.gotManif = make(chan channel.Manifest, 1)
	p := testPlan(t, input)
	out := filepath.Join(p.Spec.Dir, "t.result.cove")
	if old != nil {
		if err := os.WriteFile(out, old, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Run(context.Background(), p, Options{
		Driver:         g,
		OutputPath:     out,
		TranscriptPath: filepath.Join(p.Spec.Dir, "t.transcript.json"),
		Timeout:        30 * time.Second,
	})
	return res, out, err
}

func okTranscript(output []byte) channel.Transcript {
	sum := sha256.Sum256(output)
	return channel.Transcript{OK: true, Verdict: "allow", OutputBytes: int64(len(output)), OutputSHA256: hex.EncodeToString(sum[:])}
}

func TestRunKeepsOutputOfSuccessfulJob(t *testing.T) {
	output := []byte("sealed output bytes")
	g := &fakeGuest{output: output, transcript: okTranscript(output)}
	res, out, err := runFake(t, g, []byte("sealed input"))
	if err != nil {
		t.Fatal(err)
	}
	m := <-g.gotManif
	if m.KBSURL != "https://10.0.2.100:8443/kbs" {
		t.Errorf("guest KBS URL = %q, want the forwarded address with the path kept", m.KBSURL)
	}
	if got := <-g.gotInput; string(got) != "sealed input" {
		t.Errorf("guest read input %q", got)
	}
	b, err := os.ReadFile(out)
	if err != nil || string(b) != string(output) {
		t.Errorf("output file = %q (%v), want %q", b, err, output)
	}
	if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
		t.Error("the .partial file is left behind")
	}
	if !res.Transcript.OK || res.Timings.Release < 0 {
		t.Errorf("result = %+v", res)
	}
	var tr channel.Transcript
	b, _ = os.ReadFile(filepath.Join(filepath.Dir(out), "t.transcript.json"))
	if err := json.Unmarshal(b, &tr); err != nil || !tr.OK {
		t.Errorf("transcript file = %s (%v)", b, err)
	}
}

func TestRunDiscardsOutputOfFailedJob(t *testing.T) {
	g := &fakeGuest{output: []byte("partial"), transcript: channel.Transcript{OK: false, Error: "input \"claims\": corrupt"}}
	_, out, err := runFakeWithOldOutput(t, g, []byte("sealed input"), []byte("result of an earlier run"))
	if !errors.Is(err, ErrJobFailed) {
		t.Fatalf("Run error = %v, want ErrJobFailed", err)
	}
	for _, p := range []string{out, out + ".partial"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed job", p)
		}
	}
}

func TestRunDiscardsOutputWithWrongDigest(t *testing.T) {
	output := []byte("sealed output bytes")
	tr := okTranscript([]byte("other bytes of the same len"))
	tr.OutputBytes = int64(len(output))
	g := &fakeGuest{output: output, transcript: tr}
	_, out, err := runFake(t, g, []byte("sealed input"))
	if !errors.Is(err, ErrJobFailed) {
		t.Fatalf("Run error = %v, want ErrJobFailed", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists although its SHA-256 differs from the guest's", out)
	}
}

func TestKBSHostAddr(t *testing.T) {
	tests := map[string]string{
		"https://127.0.0.1:8443":       "127.0.0.1:8443",
		"https://kbs.example/kbs":      "kbs.example:443",
		"https://[::1]:9443/some/path": "[::1]:9443",
	}
	for in, want := range tests {
		got, err := KBSHostAddr(in)
		if err != nil || got != want {
			t.Errorf("KBSHostAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestRunKeepsOnlyVerifiedOutputBytes(t *testing.T) {
	output := []byte("sealed output bytes")
	g := &fakeGuest{output: output, transcript: okTranscript(output)}
	var transcriptPath string
	g.afterTranscript = func(conns map[string]net.Conn) {
		// The launcher writes the transcript after it has checked the
		// output, so bytes sent from then on come after the check.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(transcriptPath); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		conns[channel.PortOutput].Write([]byte("bytes after the check"))
		time.Sleep(200 * time.Millisecond)
	}

	g.gotInput = make(chan []byte, 1)
	g.gotManif = make(chan channel.Manifest, 1)
	p := testPlan(t, []byte("sealed input"))
	out := filepath.Join(p.Spec.Dir, "t.result.cove")
	transcriptPath = filepath.Join(p.Spec.Dir, "t.transcript.json")
	_, err := Run(context.Background(), p, Options{
		Driver:         g,
		OutputPath:     out,
		TranscriptPath: transcriptPath,
		Timeout:        30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(output) {
		t.Errorf("output file = %q, expected only the %d bytes the transcript names, %q", b, len(output), output)
	}
}

func TestRunRemovesTranscriptOfEarlierRun(t *testing.T) {
	g := &fakeGuest{output: []byte("partial"), skipTranscript: true}
	g.gotInput = make(chan []byte, 1)
	g.gotManif = make(chan channel.Manifest, 1)
	p := testPlan(t, []byte("sealed input"))
	out := filepath.Join(p.Spec.Dir, "t.result.cove")
	transcriptPath := filepath.Join(p.Spec.Dir, "t.transcript.json")
	earlier := okTranscript([]byte("result of an earlier run"))
	if err := writeTranscript(transcriptPath, &earlier); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), p, Options{
		Driver:         g,
		OutputPath:     out,
		TranscriptPath: transcriptPath,
		Timeout:        30 * time.Second,
	})
	if err == nil {
		t.Fatal("Run succeeded for a guest that sent no transcript")
	}
	if _, err := os.Stat(transcriptPath); !os.IsNotExist(err) {
		t.Errorf("the earlier run's transcript %s still exists after a run without a result (stat: %v)", transcriptPath, err)
	}
}

func TestRunRejectsTranscriptWithoutOutputDigest(t *testing.T) {
	g := &fakeGuest{transcript: channel.Transcript{OK: true, Verdict: "allow"}}
	_, out, err := runFake(t, g, []byte("sealed input"))
	if !errors.Is(err, ErrJobFailed) {
		t.Fatalf("Run error = %v, expected ErrJobFailed for a transcript without output_sha256", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists although the transcript names no output SHA-256", out)
	}
}

type fakeDevice struct{}

func (fakeDevice) Evidence(reportData [64]byte) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

func TestRunClosesDevicePortWhenDone(t *testing.T) {
	output := []byte("sealed output bytes")
	g := &fakeGuest{output: output, transcript: okTranscript(output),
		keepOpen: channel.PortSNP, kept: make(chan net.Conn, 1)}
	g.gotInput = make(chan []byte, 1)
	g.gotManif = make(chan channel.Manifest, 1)
	p := testPlan(t, []byte("sealed input"))
	_, err := Run(context.Background(), p, Options{
		Driver:         g,
		Device:         fakeDevice{},
		OutputPath:     filepath.Join(p.Spec.Dir, "t.result.cove"),
		TranscriptPath: filepath.Join(p.Spec.Dir, "t.transcript.json"),
		Timeout:        30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := <-g.kept
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read from the device port after Run returned: %v, expected io.EOF because the launcher closes its end", err)
	}
}
