// Package agent is Cove's guest agent: the program that runs inside the
// confidential VM, proves the launch to the key broker, decrypts the job's
// inputs, runs the job's command and seals its output to the recipient.
//
// The agent trusts nothing the host sends until it has checked it: the
// manifest's canonical job must hash to the HOST_DATA of the guest's own
// attestation report, and the broker releases the data keys only to that
// report.
package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"

	"cove.dev/cove/internal/channel"
	"cove.dev/cove/internal/jobspec"
)

// GuestAddr is the guest's own address on QEMU's user network.
const GuestAddr = channel.GuestAddr

// InputDir is the folder in which the command finds each input as a named
// pipe, /run/cove/inputs/NAME.
const InputDir = "/run/cove/inputs"

// Broker is the guest's view of the key broker: one attestation, then
// resource requests under it.
type Broker interface {
	// Attest runs the KBS handshake. evidence is called once with the
	// REPORT_DATA that binds the broker's nonce and the guest's key; it
	// returns the primary evidence JSON. Attest returns the broker's token.
	Attest(ctx context.Context, evidence func(reportData [64]byte) (json.RawMessage, error)) (token string, err error)
	// Resource fetches and decrypts one resource, such as a data key.
	Resource(ctx context.Context, path string) ([]byte, error)
}

// Device produces attestation evidence for REPORT_DATA: the sim-snp port
// on a development VM, /dev/sev-guest on SEV-SNP hardware.
type Device interface {
	// Evidence returns the evidence JSON and the HOST_DATA of the report in
	// it.
	Evidence(reportData [64]byte) (evidence json.RawMessage, hostData [32]byte, err error)
}

// Job is everything one run of the agent works with.
type Job struct {
	Manifest channel.Manifest
	// Canonical is the parsed canonical job, set by Run once its digest is
	// checked against the report.
	Canonical *jobspec.Canonical
	Digest    [32]byte

	Device Device
	Broker Broker
	Input  io.Reader // PortInput
	Output io.Writer // PortOutput
	// Events receives progress events; nil drops them.
	Events func(event string)
	// InputDir is the folder of the inputs' named pipes. Empty means the
	// package constant InputDir.
	InputDir string
}

// Run attests, fetches the data keys and runs the job. It returns the
// transcript, whose OK field is true only if everything succeeded. The
// error, when not nil, is also in the transcript.
func Run(ctx context.Context, job *Job) *channel.Transcript {
	tr := &channel.Transcript{}
	if err := run(ctx, job, tr); err != nil {
		tr.OK = false
		tr.Error = err.Error()
		return tr
	}
	tr.OK = true
	return tr
}

func run(ctx context.Context, job *Job, tr *channel.Transcript) error {
	job.Digest = jobspec.Digest(job.Manifest.Job)
	tr.JobDigest = hex.EncodeToString(job.Digest[:])
	c, err := jobspec.ParseCanonical(job.Manifest.Job)
	if err != nil {
		return err
	}
	if err := checkBrokerURL(c, job.Manifest.KBSURL); err != nil {
		return err
	}
	if err := checkBrokerCA(c, job.Manifest.KBSCACert); err != nil {
		return err
	}
	if len(job.Manifest.InputSizes) != len(c.Inputs) {
		return fmt.Errorf("the manifest gives %d input sizes for %d inputs", len(job.Manifest.InputSizes), len(c.Inputs))
	}
	job.Canonical = c

	emit(job, channel.EventAttesting)
	var hostDataErr error
	bound := false
	token, err := job.Broker.Attest(ctx, func(reportData [64]byte) (json.RawMessage, error) {
		ev, hostData, err := job.Device.Evidence(reportData)
		if err != nil {
			return nil, fmt.Errorf("get attestation evidence: %w", err)
		}
		// Refuse a manifest the launch was not bound to before sending
		// anything: the broker would refuse it too, but the guest must not
		// run a job that is not its own.
		if !bytes.Equal(hostData[:], job.Digest[:]) {
			hostDataErr = fmt.Errorf("the manifest's job digest %x is not the HOST_DATA %x of this guest's launch", job.Digest, hostData)
			return nil, hostDataErr
		}
		sum := sha256.Sum256(ev)
		tr.EvidenceSHA256 = hex.EncodeToString(sum[:])
		bound = true
		return ev, nil
	})
	if hostDataErr != nil {
		return hostDataErr
	}
	if err != nil {
		tr.Verdict = "deny"
		return fmt.Errorf("attestation failed: %w", err)
	}
	// The HOST_DATA check runs only inside the evidence callback, so a
	// Broker that succeeds without calling it must not let the job run.
	if !bound {
		return errors.New("attestation returned without requesting evidence, so the manifest's binding to this launch was not checked")
	}
	tr.Token = token

	keys := make([][]byte, len(c.Inputs))
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	for i, in := range c.Inputs {
		key, err := job.Broker.Resource(ctx, in.Resource)
		if err != nil {
			tr.Verdict = "deny"
			return fmt.Errorf("input %q: the broker rejected resource %s: %w", in.Name, in.Resource, err)
		}
		keys[i] = key
	}
	tr.Verdict = "allow"
	emit(job, channel.EventKeysReleased)

	return execute(ctx, job, keys, tr)
}

func emit(job *Job, event string) {
	if job.Events != nil {
		job.Events(event)
	}
}

// errIncomplete marks a job whose inputs were not all read to their end.
var errIncomplete = errors.New("input not read to its end")

// checkBrokerCA makes sure the CA the host passed is the one the job names.
// A substituted CA would let the host's own broker hand the guest keys of
// the host's choosing, and so forged inputs under the job's name.
func checkBrokerCA(c *jobspec.Canonical, caPEM []byte) error {
	if c.KBSCASHA256 == "" {
		if len(caPEM) != 0 {
			return errors.New("the manifest carries a broker CA, but the job names none")
		}
		return nil
	}
	sum := sha256.Sum256(caPEM)
	if hex.EncodeToString(sum[:]) != c.KBSCASHA256 {
		return fmt.Errorf("the manifest's broker CA has SHA-256 %x, but the job names %s", sum, c.KBSCASHA256)
	}
	return nil
}

// checkBrokerURL makes sure the URL the host passed is the job's broker URL
// with its host replaced by channel.GuestKBSAddr, where QEMU forwards the
// guest's connections to the broker. Without this check the host could pass
// an http:// URL, which skips TLS and so the broker CA the job names.
func checkBrokerURL(c *jobspec.Canonical, manifestURL string) error {
	u, err := url.Parse(c.KBSURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("the job's broker URL %q is not an https://HOST:PORT URL", c.KBSURL)
	}
	u.Host = channel.GuestKBSAddr
	if want := u.String(); manifestURL != want {
		return fmt.Errorf("the manifest's broker URL %q is not the job's broker URL as the guest reaches it, %q",
			manifestURL, want)
	}
	return nil
}
