package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/node"
	scheduler "github.com/simpleci/simpleci/services/scheduler/service"
	"go.yaml.in/yaml/v3"
)

// k8sVersion is the Kubernetes version the manifests are validated against (the oldest
// the deployment supports: the preStop sleep action and matchLabelKeys need it).
const k8sVersion = "1.33.0"

// serviceNames are the six service binaries (services/NAME/cmd/NAME), each an image
// simpleci/NAME in the manifests.
var serviceNames = []string{"gateway", "auth", "project", "scheduler", "runner", "log"}

// secretVars are the variables that hold secrets: never in a ConfigMap, never a plain
// value in a manifest.
var secretVars = []string{"SIMPLECI_INTERNAL_TOKEN", "SIMPLECI_DATABASE_URL", "SIMPLECI_RUNNER_TOKEN"}

// TestDeployManifests: every overlay of deploy/k8s renders with kustomize (Go module
// proxy, pinned in deploy/local/kustomize.sh) and validates against the Kubernetes JSON
// schemas (kubernetes-validate --strict, pinned in deploy/local/kubernetes-validate.sh);
// deploy/compose/compose.yaml passes `docker-compose config` (Debian's package). And
// neither can drift from the binaries: every flag a container is given is one its
// binary takes (`NAME -h`), every SIMPLECI_ variable one the code it links reads, peer
// addresses name Services that exist, secrets come from Secrets only, runners get no
// internal token, database or Kafka, each tier of the scheduler has a runner Deployment
// sized for its jobs and an autoscaler on its queue depth.
func TestDeployManifests(t *testing.T) {
	kustomize := localTool(t, "kustomize.sh", "kustomize")
	validate := localTool(t, "kubernetes-validate.sh", "kubernetes-validate")
	compose := localTool(t, "docker-compose.sh", "docker-compose")
	root, _ := filepath.Abs("../../..")
	bins := serviceBinaries(t, root)

	overlays, _ := filepath.Glob(filepath.Join(root, "deploy/k8s/overlays/*"))
	if len(overlays) < 2 {
		t.Fatalf("overlays: %v, want dev and production at least", overlays)
	}
	for _, dir := range overlays {
		t.Run("k8s/"+filepath.Base(dir), func(t *testing.T) {
			rendered := runTool(t, "", nil, kustomize, "build", dir)
			file := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(file, []byte(rendered), 0o600); err != nil {
				t.Fatal(err)
			}
			runTool(t, "", nil, validate, "--strict", "--quiet", "-k", k8sVersion, file)
			checkKubernetes(t, bins, rendered)
		})
	}
	t.Run("compose", func(t *testing.T) {
		dir := filepath.Join(root, "deploy/compose")
		env := []string{"SIMPLECI_INTERNAL_TOKEN=int-compose-test", "POSTGRES_PASSWORD=pw-compose-test"}
		out := runTool(t, dir, env, compose, "-f", "compose.yaml", "config")
		checkCompose(t, bins, out)
	})
}

// binary is what a service binary takes.
type binary struct {
	flags map[string]bool // from `NAME -h`
	vars  map[string]bool // SIMPLECI_ variables named in the code it links
}

// serviceBinaries builds each service binary and reads what it takes.
func serviceBinaries(t *testing.T, root string) map[string]binary {
	dir := t.TempDir()
	out := map[string]binary{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(serviceNames))
	for _, svc := range serviceNames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := readBinary(root, dir, svc)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", svc, err)
				return
			}
			mu.Lock()
			out[svc] = b
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

var (
	helpFlag = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	varName  = regexp.MustCompile(`"(SIMPLECI_[A-Z0-9_]+)"`)
)

func readBinary(root, dir, svc string) (binary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pkg := "./services/" + svc + "/cmd/" + svc
	bin := filepath.Join(dir, svc)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return binary{}, fmt.Errorf("go build: %v\n%s", err, out)
	}
	var help bytes.Buffer
	h := exec.CommandContext(ctx, bin, "-h")
	h.Stdout, h.Stderr = &help, &help
	h.Run() // exits 2 after printing the usage
	b := binary{flags: map[string]bool{}, vars: map[string]bool{}}
	for _, m := range helpFlag.FindAllStringSubmatch(help.String(), -1) {
		b.flags[m[1]] = true
	}
	if !b.flags["grpc"] || !b.flags["http"] {
		return binary{}, fmt.Errorf("`%s -h` lists no --grpc/--http: %s", svc, help.String())
	}
	// The variables: the literals of the repository's packages the binary links, and the
	// peers' addresses, which node builds from the service names.
	list := exec.CommandContext(ctx, "go", "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{range .GoFiles}} {{$.Dir}}/{{.}}{{end}}{{end}}`, pkg)
	list.Dir = root
	deps, err := list.Output()
	if err != nil {
		return binary{}, fmt.Errorf("go list: %v", err)
	}
	for _, line := range strings.Split(string(deps), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "github.com/simpleci/simpleci/") {
			continue
		}
		for _, f := range fields[1:] {
			src, err := os.ReadFile(f)
			if err != nil {
				return binary{}, err
			}
			for _, m := range varName.FindAllSubmatch(src, -1) {
				b.vars[string(m[1])] = true
			}
		}
	}
	for _, p := range node.PeerServices {
		b.vars["SIMPLECI_"+strings.ToUpper(p)+"_ADDR"] = true
	}
	return b, nil
}

// runTool runs a tool and returns its standard output; a failure fails the test with both
// outputs.
func runTool(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// The parts of the rendered objects the checks read.
type (
	k8sObject struct {
		Kind     string
		Metadata struct {
			Name   string
			Labels map[string]string
		}
		Data map[string]string
		Spec struct {
			Template struct {
				Spec struct {
					Containers []k8sContainer
					Volumes    []struct {
						Name   string
						Secret *struct {
							SecretName string `yaml:"secretName"`
						}
					}
				}
			}
			// Service
			Ports []struct {
				Name string
				Port int
			}
			// HorizontalPodAutoscaler
			ScaleTargetRef struct {
				Name string
			} `yaml:"scaleTargetRef"`
			Metrics []struct {
				Type     string
				External struct {
					Metric struct {
						Name     string
						Selector struct {
							MatchLabels map[string]string `yaml:"matchLabels"`
						}
					}
				}
			}
		}
	}
	k8sContainer struct {
		Name    string
		Image   string
		Command []string
		Args    []string
		Env     []struct {
			Name      string
			Value     *string
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name, Key string
				} `yaml:"secretKeyRef"`
				ConfigMapKeyRef *struct {
					Name, Key string
				} `yaml:"configMapKeyRef"`
			} `yaml:"valueFrom"`
		}
		EnvFrom []struct {
			ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
			SecretRef    *struct{ Name string } `yaml:"secretRef"`
		} `yaml:"envFrom"`
		Ports []struct {
			Name          string
			ContainerPort int `yaml:"containerPort"`
		}
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		Resources      struct {
			Requests, Limits map[string]string
		}
	}
	k8sProbe struct {
		HTTPGet *struct {
			Path string
			Port string
		} `yaml:"httpGet"`
	}
)

// imageService is the service an image runs: simpleci/NAME or REGISTRY/.../NAME:TAG.
func imageService(image string) string {
	name := image[strings.LastIndex(image, "/")+1:]
	name, _, _ = strings.Cut(name, ":")
	return name
}

func checkKubernetes(t *testing.T, bins map[string]binary, rendered string) {
	var objs []k8sObject
	dec := yaml.NewDecoder(strings.NewReader(rendered))
	for {
		var o k8sObject
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("rendered manifests: %v", err)
		}
		objs = append(objs, o)
	}
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		byKind[o.Kind][o.Metadata.Name] = o
	}
	for _, cm := range byKind["ConfigMap"] {
		for k := range cm.Data {
			if slices.Contains(secretVars, k) || strings.Contains(k, "TOKEN") || strings.Contains(k, "PASSWORD") {
				t.Errorf("ConfigMap %s holds %s: secrets belong in Secrets", cm.Metadata.Name, k)
			}
		}
	}
	deployed := map[string]int{}
	runnerTiers := map[string]string{} // Deployment -> tier
	for _, d := range byKind["Deployment"] {
		for _, c := range d.Spec.Template.Spec.Containers {
			svc := imageService(c.Image)
			b, ok := bins[svc]
			if !ok {
				t.Errorf("Deployment %s: image %s runs no service binary", d.Metadata.Name, c.Image)
				continue
			}
			deployed[svc]++
			where := fmt.Sprintf("Deployment %s (%s)", d.Metadata.Name, svc)
			if len(c.Command) > 0 {
				t.Errorf("%s: command %v replaces the binary", where, c.Command)
			}
			checkArgs(t, where, b, c.Args)
			env := map[string]string{}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name
				case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
					ref := e.ValueFrom.ConfigMapKeyRef
					v, ok := byKind["ConfigMap"][ref.Name].Data[ref.Key]
					if !ok {
						t.Errorf("%s: %s from ConfigMap %s key %s, which does not exist", where, e.Name, ref.Name, ref.Key)
					}
					env[e.Name] = v
				case e.Value != nil:
					env[e.Name] = *e.Value
					if slices.Contains(secretVars, e.Name) {
						t.Errorf("%s: %s is a plain value, not from a Secret", where, e.Name)
					}
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil {
					t.Errorf("%s: envFrom a whole Secret (%s) hides which variables it sets", where, ef.SecretRef.Name)
				}
				if ef.ConfigMapRef == nil {
					continue
				}
				cm, ok := byKind["ConfigMap"][ef.ConfigMapRef.Name]
				if !ok {
					t.Errorf("%s: no ConfigMap %s", where, ef.ConfigMapRef.Name)
				}
				for k, v := range cm.Data {
					if _, set := env[k]; !set {
						env[k] = v
					}
				}
			}
			checkEnv(t, where, svc, b, env)
			// Peers' addresses name a Service of the deployment, on its gRPC port.
			for _, p := range node.PeerServices {
				addr := env["SIMPLECI_"+strings.ToUpper(p)+"_ADDR"]
				if addr == "" {
					continue
				}
				host, port, _ := strings.Cut(addr, ":")
				s, ok := byKind["Service"][host]
				if !ok || !slices.ContainsFunc(s.Spec.Ports, func(sp struct {
					Name string
					Port int
				}) bool {
					return strconv.Itoa(sp.Port) == port && sp.Name == "grpc"
				}) {
					t.Errorf("%s: the %s address %s is no Service's gRPC port", where, p, addr)
				} else if c := s.Metadata.Labels["app.kubernetes.io/component"]; c != p {
					t.Errorf("%s: the %s address %s is the Service of %q", where, p, addr, c)
				}
			}
			checkPorts(t, where, c, env)
			if svc == "runner" {
				runnerTiers[d.Metadata.Name] = env["SIMPLECI_RUNNER_TIERS"]
				checkRunnerSize(t, where, c, env)
			}
		}
	}
	for _, svc := range serviceNames {
		if deployed[svc] == 0 {
			t.Errorf("no Deployment runs %s", svc)
		}
		if svc != "runner" {
			if _, ok := byKind["Service"]["simpleci-"+svc]; !ok {
				t.Errorf("no Service simpleci-%s", svc)
			}
			if _, ok := byKind["PodDisruptionBudget"]["simpleci-"+svc]; !ok {
				t.Errorf("no PodDisruptionBudget simpleci-%s", svc)
			}
		}
	}
	// Each tier of the scheduler has runners, and an autoscaler on its queue depth.
	for tier := range scheduler.DefaultTiers() {
		var dep string
		for name, tiers := range runnerTiers {
			if slices.Contains(node.Split(tiers), tier) {
				dep = name
			}
		}
		if dep == "" {
			t.Errorf("no runner Deployment serves the tier %s (runners: %v)", tier, runnerTiers)
			continue
		}
		if _, ok := byKind["PodDisruptionBudget"][dep]; !ok {
			t.Errorf("no PodDisruptionBudget for %s", dep)
		}
		hpa, ok := byKind["HorizontalPodAutoscaler"][dep]
		if !ok || hpa.Spec.ScaleTargetRef.Name != dep || len(hpa.Spec.Metrics) != 1 ||
			hpa.Spec.Metrics[0].Type != "External" || hpa.Spec.Metrics[0].External.Metric.Name != "simpleci_queue_depth" ||
			hpa.Spec.Metrics[0].External.Metric.Selector.MatchLabels["tier"] != tier {
			t.Errorf("the autoscaler of %s: %+v, want one on simpleci_queue_depth{tier=%q}", dep, hpa.Spec, tier)
		}
	}
}

// checkArgs: every flag is one the binary takes, as --name or --name=value.
func checkArgs(t *testing.T, where string, b binary, args []string) {
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			t.Errorf("%s: argument %q is not a --flag", where, a)
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if !b.flags[name] {
			t.Errorf("%s: the binary takes no --%s", where, name)
		}
	}
}

// checkEnv: every variable is one the binary reads; the control plane gets the secrets
// it needs from Secrets, a runner none of what it refuses.
func checkEnv(t *testing.T, where, svc string, b binary, env map[string]string) {
	for k := range env {
		if !b.vars[k] {
			t.Errorf("%s: the %s binary reads no %s", where, svc, k)
		}
	}
	if svc == "runner" {
		for _, k := range []string{"SIMPLECI_INTERNAL_TOKEN", "SIMPLECI_KAFKA_BROKERS", "SIMPLECI_DATABASE_URL"} {
			if _, ok := env[k]; ok {
				t.Errorf("%s: a runner gets %s (it refuses the internal token and Kafka, and has no database)", where, k)
			}
		}
		return
	}
	for _, k := range []string{"SIMPLECI_INTERNAL_TOKEN", "SIMPLECI_DATABASE_URL"} {
		if !strings.HasPrefix(env[k], "secret:") {
			t.Errorf("%s: %s not from a Secret (%q)", where, k, env[k])
		}
	}
	if env["SIMPLECI_KAFKA_BROKERS"] == "" {
		t.Errorf("%s: no Kafka brokers", where)
	}
}

// checkPorts: the container ports are where the binary listens, and the probes ask
// /healthz and /readyz on its HTTP port.
func checkPorts(t *testing.T, where string, c k8sContainer, env map[string]string) {
	listen := map[string]string{"grpc": ":9090", "http": ":8080"} // the binaries' defaults
	for name, v := range map[string]string{"grpc": env["SIMPLECI_GRPC_ADDR"], "http": env["SIMPLECI_HTTP_ADDR"]} {
		if v != "" {
			listen[name] = v
		}
	}
	for name, addr := range listen {
		i := slices.IndexFunc(c.Ports, func(p struct {
			Name          string
			ContainerPort int `yaml:"containerPort"`
		}) bool {
			return p.Name == name
		})
		if i < 0 || ":"+strconv.Itoa(c.Ports[i].ContainerPort) != addr[strings.LastIndex(addr, ":"):] {
			t.Errorf("%s: container port %s does not match the listener %s", where, name, addr)
		}
	}
	for probe, want := range map[*k8sProbe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port != "http" {
			t.Errorf("%s: no probe on %s at the http port", where, want)
		}
	}
}

// checkRunnerSize: a runner pod's memory limit holds its jobs at the tier's memory, and
// it requests the CPUs they are given.
func checkRunnerSize(t *testing.T, where string, c k8sContainer, env map[string]string) {
	jobs, err := strconv.Atoi(env["SIMPLECI_RUNNER_JOBS"])
	if err != nil || jobs < 1 {
		t.Errorf("%s: SIMPLECI_RUNNER_JOBS %q: set it (the default, the node's CPUs, is not the pod's)", where, env["SIMPLECI_RUNNER_JOBS"])
		return
	}
	tiers := scheduler.DefaultTiers()
	for _, name := range node.Split(env["SIMPLECI_RUNNER_TIERS"]) {
		tier, ok := tiers[name]
		if !ok {
			t.Errorf("%s: no tier %s", where, name)
			continue
		}
		if mem := quantity(c.Resources.Limits["memory"]); mem < int64(jobs)*tier.Memory {
			t.Errorf("%s: memory limit %s < %d jobs × %d bytes of the tier %s", where, c.Resources.Limits["memory"], jobs, tier.Memory, name)
		}
		if cpu, _ := strconv.ParseFloat(c.Resources.Requests["cpu"], 64); cpu < float64(jobs)*tier.CPUs {
			t.Errorf("%s: CPU request %s < %d jobs × %g CPUs of the tier %s", where, c.Resources.Requests["cpu"], jobs, tier.CPUs, name)
		}
	}
}

// quantity reads a Kubernetes memory quantity with a binary suffix (Ki, Mi, Gi) or none.
func quantity(q string) int64 {
	mult := int64(1)
	for i, s := range []string{"Ki", "Mi", "Gi", "Ti"} {
		if v, ok := strings.CutSuffix(q, s); ok {
			q, mult = v, int64(1)<<(10*(i+1))
			break
		}
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		return -1
	}
	return n * mult
}

// checkCompose: the compose file's services run the service binaries with flags and
// variables they take; the runner gets none of what it refuses.
func checkCompose(t *testing.T, bins map[string]binary, out string) {
	var cf struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Environment map[string]string
		}
	}
	if err := yaml.Unmarshal([]byte(out), &cf); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for name, s := range cf.Services {
		svc := imageService(s.Image)
		b, ok := bins[svc]
		if !ok {
			continue // postgres, kafka
		}
		seen[svc] = true
		where := "compose service " + name
		checkArgs(t, where, b, s.Command)
		for k := range s.Environment {
			if !b.vars[k] {
				t.Errorf("%s: the %s binary reads no %s", where, svc, k)
			}
		}
		if svc == "runner" {
			for _, k := range []string{"SIMPLECI_INTERNAL_TOKEN", "SIMPLECI_KAFKA_BROKERS", "SIMPLECI_DATABASE_URL"} {
				if _, ok := s.Environment[k]; ok {
					t.Errorf("%s: a runner gets %s", where, k)
				}
			}
		}
	}
	for _, svc := range serviceNames {
		if !seen[svc] {
			t.Errorf("compose runs no %s", svc)
		}
	}
}
