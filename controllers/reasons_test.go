package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/nodeaction/nodeaction-operator/internal/provider"
)

// Every class a driver can return has a condition reason: the constants are
// read from the provider package's source, so a new class without a reason
// fails here rather than showing up raw in a condition.
func TestEveryClassHasAReason(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "internal", "provider", "class.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("provider.%s is not a string literal", name.Name)
				}
				value, _ := strconv.Unquote(lit.Value)
				n++
				if _, ok := reasons[provider.Class(value)]; !ok {
					t.Errorf("provider.%s (%q) has no condition reason in controllers/reasons.go", name.Name, value)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("read only %d classes from class.go; the test is not reading what it should", n)
	}
}
