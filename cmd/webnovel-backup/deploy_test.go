package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The deployment files (docker-compose.yml, deploy/) only run command lines the binary
// accepts, and only set environment variables it reads.

const repoRoot = "../.."

// binaryPath is where deploy/Dockerfile installs the binary.
const binaryPath = "/usr/local/bin/webnovel-backup"

// knownEnv are the variables webnovel-backup reads by name; knownEnvPrefixes are families read
// by libraries (the AWS SDK's credential chain, OpenTelemetry's exporters). TZ is read by the
// Go runtime: backup names are in local time.
var (
	knownEnv         = []string{"DATABASE_URL", "STORAGE_URL", "NATS_URL", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CA", "NATS_CERT", "NATS_KEY", "TZ"}
	knownEnvPrefixes = []string{"AWS_", "OTEL_"}
)

// The binary really reads the variables the test calls known: each flag's help names its
// variable, as globals.resolve reads it.
func TestKnownEnvIsRead(t *testing.T) {
	var help bytes.Buffer
	root := newRootCommand()
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { help.WriteString(f.Usage + "\n") })
	for _, name := range knownEnv {
		if name == "TZ" {
			continue
		}
		if !strings.Contains(help.String(), "env "+name+")") && !strings.Contains(help.String(), "env "+name+";") {
			t.Errorf("%s: no flag says it reads it", name)
		}
	}
}

// checkCommandLine parses args (without the binary's name) as the binary would, without
// running it, and returns the command found.
func checkCommandLine(t *testing.T, where string, args []string) *cobra.Command {
	t.Helper()
	root := newRootCommand()
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Errorf("%s: %q: %v", where, args, err)
		return nil
	}
	if cmd == root {
		t.Errorf("%s: %q names no subcommand", where, args)
		return nil
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: %q: %v", where, args, err)
		return nil
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Errorf("%s: %q: %v", where, args, err)
		return nil
	}
	if err := cmd.ValidateRequiredFlags(); err != nil {
		t.Errorf("%s: %q: %v", where, args, err)
	}
	return cmd
}

func checkEnv(t *testing.T, where, name string) {
	t.Helper()
	for _, k := range knownEnv {
		if name == k {
			return
		}
	}
	for _, p := range knownEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return
		}
	}
	t.Errorf("%s: sets %s, which webnovel-backup does not read", where, name)
}

func strs(t *testing.T, where string, v any) []string {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				t.Errorf("%s: %v is not a string", where, e)
			}
			out = append(out, s)
		}
		return out
	case string:
		// Shell form: the Dockerfile's ENTRYPOINT does not split it; refuse it.
		t.Errorf("%s: %q: use the list (exec) form", where, v)
	}
	return nil
}

func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func TestComposeCommandLines(t *testing.T) {
	docs := readYAMLDocs(t, filepath.Join(repoRoot, "docker-compose.yml"))
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	services, _ := docs[0]["services"].(map[string]any)
	ours := 0
	seen := map[string]bool{}
	for name, s := range services {
		svc := s.(map[string]any)
		image, _ := svc["image"].(string)
		build, _ := svc["build"].(map[string]any)
		if !strings.HasPrefix(image, "webnovel-backup") && (build == nil || build["dockerfile"] != "deploy/Dockerfile") {
			continue
		}
		ours++
		where := "docker-compose.yml " + name
		if _, ok := svc["entrypoint"]; ok {
			t.Errorf("%s: overrides the image's entrypoint", where)
		}
		cmd := checkCommandLine(t, where, strs(t, where, svc["command"]))
		if cmd != nil {
			seen[cmd.Name()] = true
		}
		switch env := svc["environment"].(type) {
		case map[string]any:
			for k := range env {
				checkEnv(t, where, k)
			}
		case []any:
			for _, kv := range env {
				k, _, _ := strings.Cut(kv.(string), "=")
				checkEnv(t, where, k)
			}
		}
		if hc, ok := svc["healthcheck"].(map[string]any); ok {
			test := strs(t, where+" healthcheck", hc["test"])
			if len(test) < 3 || test[0] != "CMD" || test[1] != binaryPath {
				t.Errorf("%s: healthcheck %q: the image has no shell; run %s", where, test, binaryPath)
			} else {
				checkCommandLine(t, where+" healthcheck", test[2:])
			}
		}
		if cmd != nil && cmd.Name() == "worker" {
			if _, ok := svc["healthcheck"]; !ok {
				t.Errorf("%s: a worker without a health check", where)
			}
		}
		if cmd != nil && cmd.Name() == "backup" {
			if svc["restart"] != "no" && svc["profiles"] == nil {
				t.Errorf("%s: a one-shot backup must not restart", where)
			}
		}
	}
	for _, want := range []string{"worker", "backup", "demo"} {
		if !seen[want] {
			t.Errorf("docker-compose.yml runs no %s", want)
		}
	}
	for _, want := range []string{"nats1", "nats2", "nats3", "postgres", "minio", "jaeger"} {
		if services[want] == nil {
			t.Errorf("docker-compose.yml has no %s service", want)
		}
	}
}

// podSpecs returns every pod spec in a Kubernetes object (Deployment, CronJob, Job...).
func podSpecs(v any) []map[string]any {
	var out []map[string]any
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["containers"]; ok {
			out = append(out, v)
		}
		for _, e := range v {
			out = append(out, podSpecs(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, podSpecs(e)...)
		}
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy/kubernetes/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var docs []map[string]any
	origin := map[int]string{}
	for _, f := range files {
		for _, d := range readYAMLDocs(t, f) {
			origin[len(docs)] = filepath.Base(f)
			docs = append(docs, d)
		}
	}
	// Keys of ConfigMaps and Secrets, for envFrom.
	keys := map[string][]string{}
	for _, d := range docs {
		kind, _ := d["kind"].(string)
		if kind != "ConfigMap" && kind != "Secret" {
			continue
		}
		name := d["metadata"].(map[string]any)["name"].(string)
		for _, field := range []string{"data", "stringData"} {
			m, _ := d[field].(map[string]any)
			for k := range m {
				keys[kind+"/"+name] = append(keys[kind+"/"+name], k)
			}
		}
	}
	seen := map[string]bool{}
	for i, d := range docs {
		kind, _ := d["kind"].(string)
		if d["apiVersion"] == nil || kind == "" {
			t.Errorf("%s: a document without apiVersion or kind", origin[i])
		}
		for _, spec := range podSpecs(d) {
			for _, c := range spec["containers"].([]any) {
				c := c.(map[string]any)
				image, _ := c["image"].(string)
				if !strings.Contains(image, "webnovel-backup") {
					continue
				}
				where := origin[i] + " " + kind + " container " + c["name"].(string)
				args := strs(t, where, c["args"])
				if command := strs(t, where, c["command"]); len(command) > 0 {
					if command[0] != binaryPath && command[0] != "webnovel-backup" {
						t.Errorf("%s: command %q does not run the binary", where, command)
						continue
					}
					args = append(command[1:], args...)
				}
				cmd := checkCommandLine(t, where, args)
				if cmd == nil {
					continue
				}
				seen[cmd.Name()] = true
				for _, e := range asList(c["env"]) {
					checkEnv(t, where, e.(map[string]any)["name"].(string))
				}
				for _, e := range asList(c["envFrom"]) {
					e := e.(map[string]any)
					for field, kind := range map[string]string{"configMapRef": "ConfigMap", "secretRef": "Secret"} {
						if ref, ok := e[field].(map[string]any); ok {
							ks, ok := keys[kind+"/"+ref["name"].(string)]
							if !ok {
								t.Errorf("%s: envFrom %s %s is not in the manifests", where, kind, ref["name"])
							}
							for _, k := range ks {
								checkEnv(t, where+" (from "+kind+")", k)
							}
						}
					}
				}
				if cmd.Name() == "worker" {
					checkWorkerPod(t, where, cmd, spec, c)
				}
			}
		}
		if kind == "CronJob" {
			if p := d["spec"].(map[string]any)["concurrencyPolicy"]; p != "Forbid" {
				t.Errorf("%s: CronJob concurrencyPolicy %v, want Forbid", origin[i], p)
			}
		}
	}
	for _, want := range []string{"worker", "backup", "prune"} {
		if !seen[want] {
			t.Errorf("deploy/kubernetes runs no %s", want)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// checkWorkerPod: probes on the health address, and time to finish tasks after SIGTERM.
func checkWorkerPod(t *testing.T, where string, cmd *cobra.Command, spec, c map[string]any) {
	t.Helper()
	grace, err := time.ParseDuration(cmd.Flags().Lookup("shutdown-grace").Value.String())
	if err != nil {
		t.Fatal(err)
	}
	term, ok := spec["terminationGracePeriodSeconds"].(int)
	if !ok || time.Duration(term)*time.Second <= grace {
		t.Errorf("%s: terminationGracePeriodSeconds %v must exceed --shutdown-grace %s", where, spec["terminationGracePeriodSeconds"], grace)
	}
	addr := cmd.Flags().Lookup("health-addr").Value.String()
	_, port, _ := strings.Cut(addr, ":")
	ports := map[string]string{}
	for _, p := range asList(c["ports"]) {
		p := p.(map[string]any)
		ports[p["name"].(string)] = strconv.Itoa(p["containerPort"].(int))
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		pr, _ := c[probe].(map[string]any)
		get, _ := pr["httpGet"].(map[string]any)
		if get == nil || get["path"] != path {
			t.Errorf("%s: %s must GET %s", where, probe, path)
			continue
		}
		p := ""
		switch v := get["port"].(type) {
		case int:
			p = strconv.Itoa(v)
		case string:
			p = ports[v]
		}
		if p != port {
			t.Errorf("%s: %s on port %s, the worker listens on %s", where, probe, p, addr)
		}
	}
	if c["resources"] == nil {
		t.Errorf("%s: no resources", where)
	}
}

// The image runs as a non-root user, a static binary built without cgo.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, "deploy/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages          int
		final           []string // instructions of the last stage
		build           string
		finalFrom, user string
		entrypoint      string
	)
	sc := bufio.NewScanner(f)
	var line string
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || text == "" {
			continue
		}
		line += text
		if strings.HasSuffix(line, `\`) {
			line = strings.TrimSuffix(line, `\`) + " "
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		line = ""
		switch strings.ToUpper(instr) {
		case "FROM":
			stages++
			final = nil
			finalFrom, user, entrypoint = rest, "", ""
		case "USER":
			user = strings.TrimSpace(rest)
		case "ENTRYPOINT":
			entrypoint = rest
		case "RUN":
			if strings.Contains(rest, "go build") {
				build = rest
			}
		}
		final = append(final, instr)
	}
	if stages < 2 {
		t.Errorf("%d stages: want a builder and a final stage", stages)
	}
	if !strings.Contains(finalFrom, "distroless/static") && !strings.HasPrefix(finalFrom, "scratch") {
		t.Errorf("final stage FROM %s: want distroless/static or scratch", finalFrom)
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	if !regexp.MustCompile(`^\["` + regexp.QuoteMeta(binaryPath) + `"`).MatchString(entrypoint) {
		t.Errorf("ENTRYPOINT %s: want the binary, exec form", entrypoint)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/webnovel-backup"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build line %q lacks %s", build, want)
		}
	}
}

// The README's Deployment section only shows command lines the binary accepts.
func TestReadmeDeploymentCommands(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Deployment\n")
	if !ok {
		t.Fatal("README.md has no Deployment section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	n := 0
	re := regexp.MustCompile(`webnovel-backup ((?:[a-z][-a-z_]*)(?: +[^|&;#\n]*)?)`)
	inCode := false
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inCode = !inCode
			continue
		}
		if !inCode {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(l, -1) {
			args := strings.Fields(m[1])
			for i, a := range args {
				args[i] = strings.Trim(a, `'"`)
			}
			checkCommandLine(t, "README Deployment", args)
			n++
		}
	}
	if n == 0 {
		t.Error("no webnovel-backup command lines found in the Deployment section")
	}
}
