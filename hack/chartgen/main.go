// Command chartgen writes the Helm chart in dist/chart from the kustomize
// output of config/, so that the chart and config/ never drift: every CRD,
// RBAC rule, policy and object in config/ reaches the chart with no hand
// edit. `make chart` runs it; test/chart fails when the committed chart is
// not what it writes now.
//
// It keeps each object as kustomize made it and templates only what a
// chart's user sets: the release namespace, the image, replicas, resources,
// manager flags, scheduling, extra labels, and switches for the CRDs, the
// admission policies, the user roles, the ServiceMonitor and the
// PrometheusRule (values.yaml says which is which).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	chartName = "nodeaction-operator"
	// The namespace config/default installs into; the chart installs into
	// the release's namespace instead.
	kustomizeNamespace = "nodeaction-system"
)

func main() {
	install := flag.String("install", "", "kustomize build config/default output")
	monitoring := flag.String("monitoring", "", "kustomize build config/prometheus output")
	out := flag.String("out", "dist/chart", "chart directory to write (replaced)")
	flag.Parse()
	if *install == "" || *monitoring == "" {
		fmt.Fprintln(os.Stderr, "usage: chartgen --install FILE --monitoring FILE [--out DIR]")
		os.Exit(2)
	}
	if err := run(*install, *monitoring, *out); err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
}

func run(installFile, monitoringFile, out string) error {
	var objs []map[string]any
	for _, f := range []string{installFile, monitoringFile} {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		o, err := decode(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		objs = append(objs, o...)
	}
	files, err := chart(objs)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	for name, content := range files {
		path := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func decode(data []byte) ([]map[string]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []map[string]any
	for {
		o := map[string]any{}
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(o) > 0 {
			out = append(out, o)
		}
	}
}

// chart returns the chart's files by path.
func chart(objs []map[string]any) (map[string]string, error) {
	files := map[string]string{
		".helmignore":            helmignore,
		"templates/_helpers.tpl": helpers,
		"templates/NOTES.txt":    notes,
	}
	var deployment map[string]any
	for _, o := range objs {
		kind, name := str(o, "kind"), str(o, "metadata", "name")
		if kind == "Namespace" {
			continue // Helm installs into the release namespace (--create-namespace)
		}
		condition := ""
		dir := "other"
		switch kind {
		case "CustomResourceDefinition":
			dir, condition = "crd", ".Values.crds.install"
			annotations := mapAt(o, "metadata", "annotations")
			annotations["chartgen.crd-keep"] = "CHARTGEN_CRD_KEEP"
		case "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			dir = "rbac"
			if kind == "ClusterRole" && isUserRole(o) {
				condition = ".Values.userRoles.enabled"
			}
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			dir, condition = "policy", ".Values.admissionPolicies.enabled"
		case "Deployment":
			dir = "manager"
			if deployment != nil {
				return nil, fmt.Errorf("config/ has two Deployments; chartgen knows one manager")
			}
			deployment = templateDeployment(o)
		case "Service":
			dir = "metrics"
		case "ServiceMonitor":
			dir, condition = "prometheus", ".Values.serviceMonitor.enabled"
			mapAt(o, "metadata", "labels")["chartgen.extra-labels"] = "CHARTGEN_EXTRA_LABELS_SERVICEMONITOR"
		case "PrometheusRule":
			dir, condition = "prometheus", ".Values.prometheusRule.enabled"
			mapAt(o, "metadata", "labels")["chartgen.extra-labels"] = "CHARTGEN_EXTRA_LABELS_PROMETHEUSRULE"
		}
		releaseNamespace(o)
		chartLabels(o)
		body, err := render(o)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, name, err)
		}
		if kind == "Deployment" {
			body = leaderElectionCheck + body
		}
		if condition != "" {
			body = "{{- if " + condition + " }}\n" + body + "{{- end }}\n"
		}
		path := fmt.Sprintf("templates/%s/%s-%s.yaml", dir, strings.ToLower(kind), name)
		if _, dup := files[path]; dup {
			return nil, fmt.Errorf("two objects would be written to %s", path)
		}
		files[path] = header + body
	}
	if deployment == nil {
		return nil, fmt.Errorf("config/ has no manager Deployment")
	}
	values, err := valuesFile(deployment)
	if err != nil {
		return nil, err
	}
	files["values.yaml"] = values
	files["Chart.yaml"] = fmt.Sprintf(chartYAML, chartName, imageTag(str(deployment, "image")))
	return files, nil
}

const header = "# Generated by hack/chartgen from config/ (make chart). Do not edit.\n"

// isUserRole: the viewer/operator/admin roles aggregate into Kubernetes'
// view, edit and admin roles; the manager's and the metrics roles do not.
func isUserRole(o map[string]any) bool {
	for l := range mapAt(o, "metadata", "labels") {
		if strings.HasPrefix(l, "rbac.authorization.k8s.io/aggregate-to-") {
			return true
		}
	}
	return false
}

// releaseNamespace puts namespaced objects, and the ServiceAccounts that
// bindings name, in the release namespace.
func releaseNamespace(o map[string]any) {
	md := mapAt(o, "metadata")
	if ns, ok := md["namespace"]; ok && ns == kustomizeNamespace {
		md["namespace"] = "CHARTGEN_NAMESPACE"
	}
	subjects, _ := o["subjects"].([]any)
	for _, s := range subjects {
		if s, ok := s.(map[string]any); ok && s["namespace"] == kustomizeNamespace {
			s["namespace"] = "CHARTGEN_NAMESPACE"
		}
	}
}

// chartLabels marks every object as the release's (Helm's usual labels).
func chartLabels(o map[string]any) {
	labels := mapAt(o, "metadata", "labels")
	labels["app.kubernetes.io/managed-by"] = "CHARTGEN_MANAGED_BY"
	labels["app.kubernetes.io/instance"] = "CHARTGEN_RELEASE"
	labels["helm.sh/chart"] = "CHARTGEN_CHART"
}

// templateDeployment replaces the manager Deployment's settable fields by
// placeholders and returns what config/ had there (the defaults).
func templateDeployment(o map[string]any) map[string]any {
	defaults := map[string]any{"replicas": mapAt(o, "spec")["replicas"]}
	mapAt(o, "spec")["replicas"] = "CHARTGEN_REPLICAS"
	pod := mapAt(o, "spec", "template", "spec")
	pod["chartgen.pod-options"] = "CHARTGEN_POD_OPTIONS"
	containers, _ := pod["containers"].([]any)
	for _, c := range containers {
		c := c.(map[string]any)
		if c["name"] != "manager" {
			continue
		}
		defaults["image"], defaults["args"], defaults["resources"] = c["image"], c["args"], c["resources"]
		c["image"] = "CHARTGEN_IMAGE"
		c["imagePullPolicy"] = "CHARTGEN_PULL_POLICY"
		c["args"] = "CHARTGEN_BLOCK_ARGS"
		c["resources"] = "CHARTGEN_BLOCK_RESOURCES"
	}
	return defaults
}

// Go template text in objects (the alerts' {{ $value }}) is kept as text.
var escapeBraces = strings.NewReplacer("{{", `{{ "{{" }}`, "}}", `{{ "}}" }}`)

// A line whose value is a placeholder; for the placeholders that stand for
// whole entries (pod options, extra labels, the CRD's keep annotation) the
// key is only there to hold it.
var placeholderLine = regexp.MustCompile(`(?m)^( *)(- )?([A-Za-z0-9_./-]+): (CHARTGEN_[A-Z_]+)$`)

// render writes the object as YAML and turns placeholders into template
// actions.
func render(o map[string]any) (string, error) {
	data, err := yaml.Marshal(o)
	if err != nil {
		return "", err
	}
	text := escapeBraces.Replace(string(data))
	text = placeholderLine.ReplaceAllStringFunc(text, func(line string) string {
		m := placeholderLine.FindStringSubmatch(line)
		indent, item, key, placeholder := m[1], m[2], m[3], m[4]
		prefix := indent + item + key + ": "
		inner := indent + strings.Repeat(" ", len(item))
		nindent := len(inner) + 2
		switch placeholder {
		case "CHARTGEN_NAMESPACE":
			return prefix + "{{ .Release.Namespace }}"
		case "CHARTGEN_MANAGED_BY":
			return prefix + "{{ .Release.Service }}"
		case "CHARTGEN_RELEASE":
			return prefix + "{{ .Release.Name | quote }}"
		case "CHARTGEN_CHART":
			return prefix + `{{ include "nodeaction-operator.chart" . }}`
		case "CHARTGEN_REPLICAS":
			return prefix + "{{ .Values.replicaCount }}"
		case "CHARTGEN_IMAGE":
			return prefix + `"{{ .Values.image.repository }}:{{ .Values.image.tag }}"`
		case "CHARTGEN_PULL_POLICY":
			return prefix + "{{ .Values.image.pullPolicy }}"
		case "CHARTGEN_BLOCK_ARGS":
			return fmt.Sprintf("%s%s:\n%s  {{- toYaml (concat .Values.manager.args .Values.manager.extraArgs) | nindent %d }}", indent+item, key, inner, nindent)
		case "CHARTGEN_BLOCK_RESOURCES":
			return fmt.Sprintf("%s%s:\n%s  {{- toYaml .Values.resources | nindent %d }}", indent+item, key, inner, nindent)
		case "CHARTGEN_POD_OPTIONS":
			var b strings.Builder
			for _, field := range []string{"imagePullSecrets", "nodeSelector", "affinity", "tolerations", "priorityClassName"} {
				if field == "priorityClassName" {
					fmt.Fprintf(&b, "%s{{- with .Values.%s }}\n%s%s: {{ . }}\n%s{{- end }}\n", indent, field, indent, field, indent)
					continue
				}
				fmt.Fprintf(&b, "%s{{- with .Values.%s }}\n%s%s:\n%s  {{- toYaml . | nindent %d }}\n%s{{- end }}\n", indent, field, indent, field, indent, len(indent)+2, indent)
			}
			return strings.TrimSuffix(b.String(), "\n")
		case "CHARTGEN_EXTRA_LABELS_SERVICEMONITOR", "CHARTGEN_EXTRA_LABELS_PROMETHEUSRULE":
			values := map[string]string{"CHARTGEN_EXTRA_LABELS_SERVICEMONITOR": "serviceMonitor", "CHARTGEN_EXTRA_LABELS_PROMETHEUSRULE": "prometheusRule"}[placeholder]
			return fmt.Sprintf("%s{{- with .Values.%s.labels }}\n%s{{- toYaml . | nindent %d }}\n%s{{- end }}", indent, values, indent, len(indent), indent)
		case "CHARTGEN_CRD_KEEP":
			return fmt.Sprintf("%s{{- if .Values.crds.keep }}\n%shelm.sh/resource-policy: keep\n%s{{- end }}", indent, indent, indent)
		}
		return line
	})
	if strings.Contains(text, "CHARTGEN_") {
		return "", fmt.Errorf("a placeholder was left in:\n%s", text)
	}
	return text, nil
}
