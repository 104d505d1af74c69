package main

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeaction/nodeaction-operator/api/v1alpha1"
)

type runOptions struct {
	provider string
	params   []string
	confirm  string
	name     string
	wait     bool
	timeout  time.Duration

	// spec.node: the Kubernetes Node on the VM.
	node               string
	drain              bool
	drainTimeout       time.Duration
	onDrainTimeout     string
	deleteEmptyDirData bool
	waitReady          time.Duration
	noUncordon         bool
}

func newRunCommand(s *session) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run ACTION NODE_ID --provider PROVIDER",
		Short: "Create a NodeAction: run one action on one VM",
		Example: `  kubectl nodeaction run reboot --provider digitalocean 3164494 --wait
  kubectl nodeaction run resize --provider digitalocean 3164494 --param size=s-2vcpu-4gb --param disk=true
  kubectl nodeaction run recover --provider senlin 5f3c... --param recover.operation=REBUILD --confirm=5f3c...
  kubectl nodeaction run reboot --provider digitalocean 3164494 --node worker-3 --drain --drain-timeout 10m --wait`,
		Long: `Create a NodeAction that runs ACTION on the VM NODE_ID through the Provider
named by --provider (in the namespace), with a generated name.

Parameters the action needs go in --param key=value (repeatable), with the
field names of spec.parameters: name, image, size, disk, resource, amount,
kernel, resources.cpu, resources.ram, resources.disk, backupPolicy.plan,
backupPolicy.weekday, backupPolicy.hour, recover.operation,
recover.rebootType, recover.check, recover.deleteTimeout,
recover.forceRecreate.

Destructive actions (reinstall, rebuild, restore, recover REBUILD/RECREATE)
need --confirm=NODE_ID; spec.confirm is set only when you pass it.

With --node (the Kubernetes Node on the VM; "auto" finds it from the VM) the
operator waits for the Node to come back Ready after the action, with a new
boot id where the action restarts the guest; --drain cordons and drains it
first (docs/nodes.md).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, s, args[0], args[1])
		},
	}
	cmd.Flags().StringVar(&o.provider, "provider", "", "name of the Provider (in the namespace) to run the action through")
	cmd.Flags().StringArrayVar(&o.params, "param", nil, "an action parameter, key=value (repeatable; see above for the keys)")
	cmd.Flags().StringVar(&o.confirm, "confirm", "", "the node id again, to confirm a destructive action (sets spec.confirm)")
	cmd.Flags().StringVar(&o.name, "name", "", "name of the NodeAction (default: generated from the action and node id)")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "follow the action until it succeeds or fails; exit 1 if it fails")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "with --wait, give up after this long (0: wait as long as it takes)")
	cmd.Flags().StringVar(&o.node, "node", "", `the Kubernetes Node on the VM, or "auto" to find it from the VM (sets spec.node)`)
	cmd.Flags().BoolVar(&o.drain, "drain", false, "cordon and drain the Node before the provider call (needs --node)")
	cmd.Flags().DurationVar(&o.drainTimeout, "drain-timeout", 0, "with --drain, how long the drain may take (default: the operator's, 10m)")
	cmd.Flags().StringVar(&o.onDrainTimeout, "on-drain-timeout", "", "with --drain, Fail (no provider call, the Node left cordoned) or Proceed when the drain times out")
	cmd.Flags().BoolVar(&o.deleteEmptyDirData, "delete-emptydir-data", false, "with --drain, evict pods with emptyDir volumes too (their data is lost)")
	cmd.Flags().DurationVar(&o.waitReady, "wait-ready", 0, "with --node, how long to wait for the Node to be Ready again after the action (default: the operator's)")
	cmd.Flags().BoolVar(&o.noUncordon, "no-uncordon", false, "with --drain, leave the Node cordoned after the action")
	_ = cmd.MarkFlagRequired("provider")
	return cmd
}

func (o *runOptions) run(cmd *cobra.Command, s *session, action, nodeID string) error {
	na, err := o.nodeAction(action, nodeID)
	if err != nil {
		return err
	}
	c, ns, err := s.client()
	if err != nil {
		return err
	}
	na.Namespace = ns
	if err := c.Create(cmd.Context(), na); err != nil {
		return explain(err, "")
	}
	fmt.Fprintf(s.streams.Out, "nodeaction.compute.nodeaction.dev/%s created in namespace %s\n", na.Name, ns)
	if !o.wait {
		return nil
	}
	return follow(cmd.Context(), c, s.streams.Out, na, o.timeout)
}

// nodeAction builds the NodeAction the flags describe. (New spec fields get
// their flags here, next to --confirm and --param.)
func (o *runOptions) nodeAction(action, nodeID string) (*v1alpha1.NodeAction, error) {
	na := &v1alpha1.NodeAction{Spec: v1alpha1.NodeActionSpec{
		ProviderRef: v1alpha1.ProviderReference{Name: o.provider},
		NodeID:      nodeID,
		Action:      action,
		Confirm:     o.confirm,
	}}
	if o.name != "" {
		na.Name = o.name
	} else {
		na.GenerateName = generatedNamePrefix(action, nodeID)
	}
	if len(o.params) > 0 {
		na.Spec.Parameters = &v1alpha1.ActionParameters{}
		for _, p := range o.params {
			key, value, ok := strings.Cut(p, "=")
			if !ok || key == "" {
				return nil, fmt.Errorf("--param %q: want key=value, for example --param size=s-2vcpu-4gb", p)
			}
			if err := setParameter(na.Spec.Parameters, key, value); err != nil {
				return nil, err
			}
		}
	}
	node, err := o.nodeSpec()
	if err != nil {
		return nil, err
	}
	na.Spec.Node = node
	return na, nil
}

// nodeSpec builds spec.node from the node flags; nil without --node.
func (o *runOptions) nodeSpec() (*v1alpha1.NodeSpec, error) {
	if o.node == "" {
		if o.drain || o.drainTimeout != 0 || o.onDrainTimeout != "" || o.deleteEmptyDirData || o.waitReady != 0 || o.noUncordon {
			return nil, fmt.Errorf(`--drain, --drain-timeout, --on-drain-timeout, --delete-emptydir-data, --wait-ready and --no-uncordon need --node NAME (or --node auto)`)
		}
		return nil, nil
	}
	node := &v1alpha1.NodeSpec{}
	if o.node != "auto" {
		node.Name = o.node
	}
	if o.waitReady != 0 {
		node.WaitReadySeconds = ptrTo(seconds(o.waitReady))
	}
	if !o.drain {
		if o.drainTimeout != 0 || o.onDrainTimeout != "" || o.deleteEmptyDirData || o.noUncordon {
			return nil, fmt.Errorf("--drain-timeout, --on-drain-timeout, --delete-emptydir-data and --no-uncordon need --drain")
		}
		return node, nil
	}
	drain := &v1alpha1.DrainSpec{DeleteEmptyDirData: o.deleteEmptyDirData}
	if o.drainTimeout != 0 {
		drain.TimeoutSeconds = seconds(o.drainTimeout)
	}
	switch o.onDrainTimeout {
	case "", "Fail", "Proceed":
		drain.OnTimeout = o.onDrainTimeout
	default:
		return nil, fmt.Errorf("--on-drain-timeout %q: want Fail or Proceed", o.onDrainTimeout)
	}
	node.Drain = drain
	if o.noUncordon {
		node.Uncordon = ptrTo(false)
	}
	return node, nil
}

// seconds rounds a flag's duration up to whole seconds, the API's unit.
func seconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}

func ptrTo[T any](v T) *T { return &v }

var notNameChars = regexp.MustCompile(`[^a-z0-9-]+`)

// generatedNamePrefix makes "reboot-3164494-" from the action and node id,
// lower case and short enough that the API server's suffix still fits.
func generatedNamePrefix(action, nodeID string) string {
	p := notNameChars.ReplaceAllString(strings.ToLower(action+"-"+nodeID), "-")
	if len(p) > 40 {
		p = p[:40]
	}
	return strings.Trim(p, "-") + "-"
}

// setParameter sets one field of spec.parameters named by its JSON path
// (recover.operation), converting the value to the field's type.
func setParameter(params *v1alpha1.ActionParameters, key, value string) error {
	v := reflect.ValueOf(params).Elem()
	path := strings.Split(key, ".")
	for i, name := range path {
		field, ok := fieldByJSONName(v, name)
		if !ok {
			return fmt.Errorf("--param %s: unknown parameter %q; known here: %s", key, strings.Join(path[:i+1], "."), strings.Join(jsonNames(v), ", "))
		}
		if field.Kind() == reflect.Pointer {
			if field.IsNil() {
				field.Set(reflect.New(field.Type().Elem()))
			}
			field = field.Elem()
		}
		if i < len(path)-1 {
			if field.Kind() != reflect.Struct {
				return fmt.Errorf("--param %s: %s has no fields", key, strings.Join(path[:i+1], "."))
			}
			v = field
			continue
		}
		switch field.Kind() {
		case reflect.String:
			field.SetString(value)
		case reflect.Int32, reflect.Int64:
			n, err := strconv.ParseInt(value, 10, field.Type().Bits())
			if err != nil {
				return fmt.Errorf("--param %s=%s: want a whole number", key, value)
			}
			field.SetInt(n)
		case reflect.Bool:
			b, err := strconv.ParseBool(value)
			if err != nil {
				return fmt.Errorf("--param %s=%s: want true or false", key, value)
			}
			field.SetBool(b)
		case reflect.Struct:
			return fmt.Errorf("--param %s: set its fields, for example %s.%s=...", key, key, jsonNames(field)[0])
		default:
			return fmt.Errorf("--param %s: cannot be set from the command line", key)
		}
	}
	return nil
}

func fieldByJSONName(v reflect.Value, name string) (reflect.Value, bool) {
	for i := range v.NumField() {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ","); tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func jsonNames(v reflect.Value) []string {
	var names []string
	for i := range v.NumField() {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ","); tag != "" {
			names = append(names, tag)
		}
	}
	slices.Sort(names)
	return names
}

// readyCondition returns the NodeAction's Ready condition, or nil.
func readyCondition(na *v1alpha1.NodeAction) *metav1.Condition {
	for i := range na.Status.Conditions {
		if na.Status.Conditions[i].Type == v1alpha1.ConditionReady {
			return &na.Status.Conditions[i]
		}
	}
	return nil
}

func readyReason(na *v1alpha1.NodeAction) string {
	if c := readyCondition(na); c != nil {
		return c.Reason
	}
	return ""
}
