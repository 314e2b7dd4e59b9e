// Command covectl administers a Cove key broker through its admin API.
//
// Usage:
//
//	covectl [--kbs URL] [--token-file FILE] [--ca-file FILE] COMMAND
//
//	key create NAME                 create the Vault Transit key NAME
//	key wrap NAME DATA_KEY_FILE     wrap a 32-byte data key; print wrapped_key and resource
//	policy set NAME FILE            store the YAML policy in FILE as NAME
//	policy show NAME                print policy NAME
//	grant NAME --policy P --job-digest HEX [--job-digest HEX...]
//	                                grant key NAME to jobs with these digests under policy P
//	grant show NAME                 print the grant of key NAME
//
// The defaults of --kbs, --token-file and --ca-file come from COVE_KBS_URL,
// COVE_KBS_TOKEN_FILE and COVE_KBS_CA_FILE.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"cove.dev/cove/internal/cafile"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: covectl [--kbs URL] [--token-file FILE] [--ca-file FILE] COMMAND

commands:
  key create NAME
  key wrap NAME DATA_KEY_FILE
  policy set NAME FILE
  policy show NAME
  grant NAME --policy POLICY --job-digest HEX [--job-digest HEX...]
  grant show NAME
`

// run executes one command and returns the exit status: 0 on success, 1
// when the broker rejected the request or failed, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("covectl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	kbsURL := fs.String("kbs", envOr("COVE_KBS_URL", "https://127.0.0.1:8443"), "broker `URL`")
	tokenFile := fs.String("token-file", os.Getenv("COVE_KBS_TOKEN_FILE"), "`file` containing the admin token")
	caFile := fs.String("ca-file", os.Getenv("COVE_KBS_CA_FILE"), "PEM CA `file` of the broker's certificate; empty uses the system roots")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	cmd, err := parseCommand(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "covectl: %v\n\n%s", err, usage)
		return 2
	}
	api, err := newAdminClient(*kbsURL, *tokenFile, *caFile)
	if err != nil {
		fmt.Fprintln(stderr, "covectl:", err)
		return 2
	}
	if err := cmd(api, stdout); err != nil {
		fmt.Fprintln(stderr, "covectl:", err)
		return 1
	}
	return 0
}

type command func(api *adminClient, stdout io.Writer) error

func parseCommand(args []string) (command, error) {
	if len(args) == 0 {
		return nil, errors.New("no command given")
	}
	switch {
	case len(args) == 3 && args[0] == "key" && args[1] == "create":
		name := args[2]
		return func(api *adminClient, out io.Writer) error {
			if _, err := api.do(http.MethodPost, "/admin/v0/keys/"+url.PathEscape(name), "", nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "created transit key %s\n", name)
			return nil
		}, nil

	case len(args) == 4 && args[0] == "key" && args[1] == "wrap":
		name, file := args[2], args[3]
		return func(api *adminClient, out io.Writer) error {
			dataKey, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			defer clear(dataKey)
			if len(dataKey) != 32 {
				return fmt.Errorf("%s contains %d bytes; a data key is exactly 32 raw bytes",
					file, len(dataKey))
			}
			body, _ := json.Marshal(map[string]string{"data_key": base64.StdEncoding.EncodeToString(dataKey)})
			response, err := api.do(http.MethodPost, "/admin/v0/keys/"+url.PathEscape(name)+"/wrap", "application/json", body)
			if err != nil {
				return err
			}
			_, err = out.Write(response)
			return err
		}, nil

	case len(args) == 4 && args[0] == "policy" && args[1] == "set":
		name, file := args[2], args[3]
		return func(api *adminClient, out io.Writer) error {
			policy, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if _, err := api.do(http.MethodPut, "/admin/v0/policies/"+url.PathEscape(name), "application/yaml", policy); err != nil {
				return err
			}
			fmt.Fprintf(out, "stored policy %s\n", name)
			return nil
		}, nil

	case len(args) == 3 && args[0] == "policy" && args[1] == "show":
		return show("/admin/v0/policies/" + url.PathEscape(args[2])), nil

	case len(args) == 3 && args[0] == "grant" && args[1] == "show":
		return show("/admin/v0/grants/" + url.PathEscape(args[2])), nil

	case len(args) >= 2 && args[0] == "grant":
		return parseGrant(args[1], args[2:])
	}
	return nil, fmt.Errorf("unknown command or wrong number of arguments: %s",
		strings.Join(args, " "))
}

func show(path string) command {
	return func(api *adminClient, out io.Writer) error {
		body, err := api.do(http.MethodGet, path, "", nil)
		if err != nil {
			return err
		}
		_, err = out.Write(body)
		return err
	}
}

// listFlag collects a flag given several times, each value possibly a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func parseGrant(key string, args []string) (command, error) {
	fs := flag.NewFlagSet("covectl grant", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	policy := fs.String("policy", "", "policy name")
	var digests listFlag
	fs.Var(&digests, "job-digest", "job digest, 64 hex characters; repeat for several")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("grant %s: %v", key, err)
	}
	// Accept further digests after the flags: --job-digest A B C.
	digests = append(digests, fs.Args()...)
	if *policy == "" {
		return nil, fmt.Errorf("grant %s: --policy is missing; name the policy the evidence must satisfy",
			key)
	}
	if len(digests) == 0 {
		return nil, fmt.Errorf("grant %s: --job-digest is missing; give the 64-hex-character digest of each job allowed the key",
			key)
	}
	body, _ := json.Marshal(map[string]any{"policy": *policy, "job_digests": digests})
	return func(api *adminClient, out io.Writer) error {
		response, err := api.do(http.MethodPut, "/admin/v0/grants/"+url.PathEscape(key), "application/json", body)
		if err != nil {
			return err
		}
		_, err = out.Write(response)
		return err
	}, nil
}

// adminClient sends admin API requests with the bearer token.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func newAdminClient(kbsURL, tokenFile, caFile string) (*adminClient, error) {
	u, err := url.Parse(kbsURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("invalid --kbs URL %q: use https://HOST:PORT", kbsURL)
	}
	if tokenFile == "" {
		return nil, errors.New("no admin token: pass --token-file FILE or set COVE_KBS_TOKEN_FILE")
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading the admin token: %w", err)
	}
	tlsConfig, err := cafile.TLSConfig(caFile)
	if err != nil {
		return nil, err
	}
	return &adminClient{
		base:  strings.TrimSuffix(kbsURL, "/"),
		token: strings.TrimSpace(string(token)),
		http:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}},
	}, nil
}

func (c *adminClient) do(method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is the broker running at %s, and is --ca-file its CA?)",
			method, path, err, c.base)
	}
	defer resp.Body.Close()
	response, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var problem struct {
			Type   string `json:"type"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(response, &problem) == nil && problem.Detail != "" {
			return nil, fmt.Errorf("%s %s: broker responded %d: %s",
				method, path, resp.StatusCode, problem.Detail)
		}
		return nil, fmt.Errorf("%s %s: broker responded %d: %s",
			method, path, resp.StatusCode, bytes.TrimSpace(response))
	}
	return response, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
