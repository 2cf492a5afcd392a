package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

// deploy/kubernetes.yaml is copied by admins as it is: these tests keep it
// in step with serve's real flags, port and probes. A `kubectl apply
// --dry-run=client` needs a cluster's API; this checks the same shape.

type k8sMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type k8sObject struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	raw        any
}

type k8sPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Port          int    `yaml:"port"`
	TargetPort    any    `yaml:"targetPort"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	TCPSocket *struct {
		Port any `yaml:"port"`
	} `yaml:"tcpSocket"`
}

type k8sEnv struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type k8sContainer struct {
	Name           string    `yaml:"name"`
	Image          string    `yaml:"image"`
	Args           []string  `yaml:"args"`
	Ports          []k8sPort `yaml:"ports"`
	Env            []k8sEnv  `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
}

type k8sDeployment struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata k8sMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sService struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []k8sPort         `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sHPA struct {
	Spec struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
	} `yaml:"spec"`
}

type k8sSecret struct {
	StringData map[string]string `yaml:"stringData"`
}

// manifest reads deploy/kubernetes.yaml, one object per document.
func manifest(t *testing.T) []k8sObject {
	t.Helper()
	f, err := os.Open("../../deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var objs []k8sObject
	for {
		var raw any
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("deploy/kubernetes.yaml, document %d: %v", len(objs)+1, err)
		}
		var o k8sObject
		as(t, raw, &o)
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("document %d lacks apiVersion, kind or metadata.name: %+v", len(objs)+1, o)
		}
		o.raw = raw
		objs = append(objs, o)
	}
	return objs
}

// as decodes a generic YAML value into a typed one.
func as(t *testing.T, raw, v any) {
	t.Helper()
	b, err := yaml.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// find returns the object of kind and name, decoded into v.
func find(t *testing.T, objs []k8sObject, kind, name string, v any) {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			as(t, o.raw, v)
			return
		}
	}
	t.Fatalf("deploy/kubernetes.yaml has no %s %q", kind, name)
}

func TestKubernetesManifestKinds(t *testing.T) {
	got := map[string]int{}
	for _, o := range manifest(t) {
		got[o.APIVersion+" "+o.Kind]++
	}
	want := map[string]int{
		"v1 Secret": 1, "apps/v1 Deployment": 2, "v1 Service": 2, "autoscaling/v2 HorizontalPodAutoscaler": 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: got %d; want %d", k, got[k], n)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected object %s", k)
		}
	}
}

// envOnly are the variables snowgate reads that are not a flag's twin.
var envOnly = map[string]bool{"SNOWGATE_AUTH_SECRET": true, "SNOWGATE_UPSTREAM_TOKEN": true, "SNOWGATE_LOG_LEVEL": true}

func TestKubernetesManifestMatchesServe(t *testing.T) {
	objs := manifest(t)
	var dep k8sDeployment
	find(t, objs, "Deployment", "snowgate", &dep)
	var secret k8sSecret
	find(t, objs, "Secret", "snowgate", &secret)
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.Containers[0].Args) == 0 || pod.Containers[0].Args[0] != "serve" {
		t.Fatalf("snowgate Deployment: want one container running serve; got %+v", pod.Containers)
	}
	c := pod.Containers[0]
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector label %s=%s is not on the pod template", k, v)
		}
	}

	fs, _ := newServeFlags(io.Discard)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if _, ok := secret.StringData[ref.Key]; ref.Name != "snowgate" || !ok {
				t.Errorf("%s comes from secret %s key %s, which the manifest's Secret lacks", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = secret.StringData[ref.Key]
		case envOnly[e.Name]:
		default:
			f := fs.Lookup(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.Name, "SNOWGATE_"), "_", "-")))
			if f == nil || envName(f.Name) != e.Name {
				t.Errorf("%s is not the environment twin of any serve flag", e.Name)
				continue
			}
			if err := fs.Set(f.Name, e.Value); err != nil {
				t.Errorf("%s=%q: serve rejects it: %v", e.Name, e.Value, err)
			}
		}
	}
	for _, name := range []string{"SNOWGATE_UPSTREAM_TOKEN", "SNOWGATE_REDIS_URL", "SNOWGATE_RATE"} {
		if _, ok := env[name]; !ok {
			t.Errorf("the snowgate container does not set %s", name)
		}
	}
	if u, err := url.Parse(env["SNOWGATE_REDIS_URL"]); err != nil || u.Hostname() != "snowgate-redis" || u.Port() != "6379" {
		t.Errorf("SNOWGATE_REDIS_URL %q: want the snowgate-redis Service on 6379", env["SNOWGATE_REDIS_URL"])
	}

	_, port, err := net.SplitHostPort(fs.Lookup("listen").Value.String())
	if err != nil {
		t.Fatal(err)
	}
	portNum, _ := strconv.Atoi(port)
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != portNum || c.Ports[0].Name != "http" {
		t.Fatalf("container ports %+v; want one named http on %d, the --listen port", c.Ports, portNum)
	}
	for _, p := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: want GET %s on the http port; got none", p.name, p.path)
			continue
		}
		if get := p.probe.HTTPGet; get.Path != p.path || !samePort(get.Port, c.Ports[0]) {
			t.Errorf("%s probe: want GET %s on the http port; got GET %s on %v", p.name, p.path, get.Path, get.Port)
		}
	}
	shutdown, err := time.ParseDuration(fs.Lookup("shutdown-timeout").Value.String())
	if err != nil {
		t.Fatal(err)
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %v: want more than --shutdown-timeout %v, or running batches are killed", grace, shutdown)
	}

	var svc k8sService
	find(t, objs, "Service", "snowgate", &svc)
	if len(svc.Spec.Ports) != 1 || !samePort(svc.Spec.Ports[0].TargetPort, c.Ports[0]) {
		t.Errorf("Service snowgate ports %+v: want one targeting the container's http port", svc.Spec.Ports)
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service snowgate selects %s=%s, which the pods lack", k, v)
		}
	}

	var hpa k8sHPA
	find(t, objs, "HorizontalPodAutoscaler", "snowgate", &hpa)
	ref := hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != "snowgate" || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA scales %+v; want the snowgate Deployment", ref)
	}
	if hpa.Spec.MinReplicas < 1 || hpa.Spec.MinReplicas > hpa.Spec.MaxReplicas {
		t.Errorf("HPA replicas %d..%d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	share, err := strconv.ParseFloat(fs.Lookup("redis-local-share").Value.String(), 64)
	if err != nil {
		t.Fatal(err)
	}
	if share*float64(hpa.Spec.MaxReplicas) > 1 {
		t.Errorf("--redis-local-share %g with up to %d replicas: together they would pass the provider's rate while Redis is down", share, hpa.Spec.MaxReplicas)
	}
}

func TestKubernetesManifestRedis(t *testing.T) {
	objs := manifest(t)
	var dep k8sDeployment
	find(t, objs, "Deployment", "snowgate-redis", &dep)
	var svc k8sService
	find(t, objs, "Service", "snowgate-redis", &svc)
	c := dep.Spec.Template.Spec.Containers
	if len(c) != 1 || len(c[0].Ports) != 1 || c[0].Ports[0].ContainerPort != 6379 {
		t.Fatalf("snowgate-redis: want one container on port 6379; got %+v", c)
	}
	args := strings.Join(c[0].Args, " ")
	for _, want := range []string{"--maxmemory ", "--maxmemory-policy allkeys-lru", "--appendonly no"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis args %q lack %q", args, want)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 6379 || !samePort(svc.Spec.Ports[0].TargetPort, c[0].Ports[0]) {
		t.Errorf("Service snowgate-redis ports %+v: want 6379 to the container's port", svc.Spec.Ports)
	}
	if c[0].ReadinessProbe == nil {
		t.Error("redis has no readiness probe")
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service snowgate-redis selects %s=%s, which the pod lacks", k, v)
		}
	}
}

// samePort reports whether a probe's or Service's port (a name or a number)
// is the container port p.
func samePort(ref any, p k8sPort) bool {
	switch v := ref.(type) {
	case string:
		return v == p.Name || v == strconv.Itoa(p.ContainerPort)
	case uint64:
		return int(v) == p.ContainerPort
	case int64:
		return int(v) == p.ContainerPort
	case int:
		return v == p.ContainerPort
	}
	return false
}

// TestKubernetesManifestHasNoRealSecrets keeps placeholders placeholders.
func TestKubernetesManifestHasNoRealSecrets(t *testing.T) {
	var secret k8sSecret
	find(t, manifest(t), "Secret", "snowgate", &secret)
	for k, v := range secret.StringData {
		if k != "redis-url" && (!strings.HasPrefix(v, "<") || !strings.HasSuffix(v, ">")) {
			t.Errorf("Secret key %s holds %q; want a <placeholder>", k, v)
		}
	}
	if b, err := os.ReadFile("../../deploy/kubernetes.yaml"); err != nil || bytes.Contains(b, []byte("password@")) {
		t.Errorf("the manifest carries a Redis password (%v)", err)
	}
}
