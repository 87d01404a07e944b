//! The graph as Graphviz DOT (`dot -Tsvg`): an undirected graph, hosts as
//! clusters, the legend as a cluster of its own.

use std::fmt::Write;

use super::{Edge, Graph, Line, Node, Shape};

/// A DOT string literal: quotes and backslashes escaped, lines joined by `\n`.
fn quote(lines: &[String]) -> String {
    let escaped: Vec<String> = lines
        .iter()
        .map(|l| l.replace('\\', "\\\\").replace('"', "\\\""))
        .collect();
    format!("\"{}\"", escaped.join("\\n"))
}

fn id(id: &str) -> String {
    quote(&[id.to_string()])
}

/// The attributes that draw a node or edge, and its text, in `colour`.
fn colour(colour: Option<&str>) -> String {
    colour
        .map(|c| format!(", color=\"{c}\", fontcolor=\"{c}\""))
        .unwrap_or_default()
}

fn node(out: &mut String, indent: &str, node: &Node) {
    let shape = match node.shape {
        Shape::Bridge => "shape=box, style=\"rounded,bold\"",
        Shape::Container => "shape=box",
        Shape::Gateway => "shape=hexagon",
        Shape::Outside => "shape=box3d",
        Shape::Network => "shape=note",
    };
    let colour = colour(node.colour);
    let _ = writeln!(
        out,
        "{indent}{} [label={}, {shape}{colour}];",
        id(&node.id),
        quote(&node.label)
    );
}

fn edge(out: &mut String, edge: &Edge) {
    let style = match edge.line {
        Line::Attachment => "",
        Line::Tunnel => ", penwidth=2",
        Line::Underlay => ", style=dashed, penwidth=2",
    };
    let colour = colour(edge.colour);
    let _ = writeln!(
        out,
        "  {} -- {} [label={}{style}{colour}];",
        id(&edge.from),
        id(&edge.to),
        quote(&edge.label)
    );
}

/// The graph in DOT.
pub fn render(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "graph ovsmesh {{");
    let _ = writeln!(
        out,
        "  graph [label={}, labelloc=t, rankdir=LR, fontname=\"Helvetica\", fontsize=12];",
        quote(std::slice::from_ref(&graph.title))
    );
    out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for cluster in &graph.clusters {
        let _ = writeln!(
            out,
            "  subgraph {} {{",
            id(&format!("cluster_{}", cluster.id))
        );
        let _ = writeln!(out, "    label={};", quote(&cluster.label));
        out.push_str("    style=rounded;\n");
        for n in &cluster.nodes {
            node(&mut out, "    ", n);
        }
        out.push_str("  }\n");
    }
    for n in &graph.nodes {
        node(&mut out, "  ", n);
    }
    for e in &graph.edges {
        edge(&mut out, e);
    }
    out.push_str("}\n");
    out
}
