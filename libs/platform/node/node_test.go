package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// component is a Component with a name and an Init.
type component struct {
	name string
	init func(ctx context.Context, env *Env) error
}

func (c component) Name() string { return c.name }
func (c component) Init(ctx context.Context, env *Env) error {
	if c.init == nil {
		return nil
	}
	return c.init(ctx, env)
}

// TestUnlistedMethodRefusesStart: a process that would serve a method the ACL does not
// list does not start (the method would be refused to everyone), naming the method.
func TestUnlistedMethodRefusesStart(t *testing.T) {
	desc := &grpc.ServiceDesc{ServiceName: "simpleci.test.v1.Unlisted", HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
			return nil, nil
		}}}}
	comp := component{name: "log", init: func(_ context.Context, env *Env) error {
		env.GRPC.RegisterService(desc, struct{}{})
		return nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, Config{GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir()}, comp)
	if err == nil || !strings.Contains(err.Error(), "/simpleci.test.v1.Unlisted/Call") || !strings.Contains(err.Error(), "ACL") {
		t.Fatalf("Run: %v, want a refusal naming the unlisted method", err)
	}
}

// TestDialPresentsTheComponentsIdentity: Dial works for a service during its Init and
// not for the runner (it has its own token) nor outside an Init.
func TestDialPresentsTheComponentsIdentity(t *testing.T) {
	var envSeen *Env
	var dialErrs = map[string]error{}
	mk := func(name string) component {
		return component{name: name, init: func(_ context.Context, env *Env) error {
			envSeen = env
			_, dialErrs[name] = env.Dial("log")
			return nil
		}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir(), Ready: func(Info) { cancel() }}
	if err := Run(ctx, cfg, mk("log"), mk("gateway"), mk("runner")); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if dialErrs["log"] != nil || dialErrs["gateway"] != nil {
		t.Fatalf("services' Dial: %v", dialErrs)
	}
	if err := dialErrs["runner"]; err == nil || !strings.Contains(err.Error(), "DialToken") {
		t.Fatalf("the runner's Dial: %v, want a refusal pointing to DialToken", err)
	}
	if _, err := envSeen.Dial("log"); err == nil {
		t.Fatal("Dial outside an Init presented no identity and was not refused")
	}
}

func TestValidateRunnerCredentials(t *testing.T) {
	runner := component{name: "runner"}
	for _, tt := range []struct {
		name  string
		cfg   Config
		comps []Component
		want  string
	}{
		{"a runner process with the internal token", Config{InternalToken: "s"}, []Component{runner}, "a runner process must not hold the deployment's internal token"},
		{"a runner process without it", Config{Peers: map[string]string{"scheduler": "x:1"}}, []Component{runner}, ""},
		{"the runner beside a service may hold it", Config{InternalToken: "s"}, []Component{runner, component{name: "scheduler"}}, ""},
		{"a runner process with Kafka brokers", Config{KafkaBrokers: []string{"kafka:9092"}}, []Component{runner}, "a runner process needs no Kafka brokers"},
		{"the runner beside a service uses the process's bus", Config{InternalToken: "s", KafkaBrokers: []string{"kafka:9092"}}, []Component{runner, component{name: "scheduler"}}, ""},
		{"a service apart without it", Config{Peers: map[string]string{"auth": "x:1"}}, []Component{component{name: "log"}}, "need a shared --internal-token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(&tt.cfg, tt.comps...)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}
