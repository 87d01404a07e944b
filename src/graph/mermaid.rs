//! The graph as a Mermaid flowchart, which the code-hosting sites render in
//! Markdown: hosts as subgraphs, colours through `style` and `linkStyle`.
//!
//! Mermaid ids are plain words, so every node gets `nN` in order of
//! appearance; labels are quoted, with `<br/>` between lines and `"` written
//! as `#quot;`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Graph, Line, Node, Shape};

fn label(lines: &[String]) -> String {
    let escaped: Vec<String> = lines
        .iter()
        .map(|l| {
            l.replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
        })
        .collect();
    format!("\"{}\"", escaped.join("<br/>"))
}

struct Ids(BTreeMap<String, String>);

impl Ids {
    fn of(&mut self, id: &str) -> String {
        let next = format!("n{}", self.0.len());
        self.0.entry(id.to_string()).or_insert(next).clone()
    }
}

fn node(out: &mut String, styles: &mut Vec<String>, ids: &mut Ids, indent: &str, node: &Node) {
    let text = label(&node.label);
    let shape = match node.shape {
        Shape::Bridge => format!("([{text}])"),
        Shape::Container => format!("[{text}]"),
        Shape::Gateway => format!("{{{{{text}}}}}"),
        Shape::Outside => format!("[[{text}]]"),
        Shape::Network => format!("[/{text}/]"),
    };
    let id = ids.of(&node.id);
    let _ = writeln!(out, "{indent}{id}{shape}");
    if let Some(colour) = node.colour {
        styles.push(format!(
            "  style {id} stroke:{colour},stroke-width:2px,color:{colour}"
        ));
    }
}

/// The graph as a Mermaid flowchart.
pub fn render(graph: &Graph) -> String {
    let mut out = String::new();
    let mut styles = Vec::new();
    let mut ids = Ids(BTreeMap::new());
    let _ = writeln!(out, "---\ntitle: {}\n---", graph.title.replace(':', " "));
    out.push_str("flowchart LR\n");
    for cluster in &graph.clusters {
        let id = ids.of(&format!("cluster/{}", cluster.id));
        let _ = writeln!(out, "  subgraph {id}[{}]", label(&cluster.label));
        for n in &cluster.nodes {
            node(&mut out, &mut styles, &mut ids, "    ", n);
        }
        out.push_str("  end\n");
    }
    for n in &graph.nodes {
        node(&mut out, &mut styles, &mut ids, "  ", n);
    }
    for (index, edge) in graph.edges.iter().enumerate() {
        let arrow = match edge.line {
            Line::Attachment => "---",
            Line::Tunnel => "===",
            Line::Underlay => "-.-",
        };
        let from = ids.of(&edge.from);
        let to = ids.of(&edge.to);
        if edge.label.is_empty() {
            let _ = writeln!(out, "  {from} {arrow} {to}");
        } else {
            let _ = writeln!(out, "  {from} {arrow}|{}| {to}", label(&edge.label));
        }
        if let Some(colour) = edge.colour {
            styles.push(format!(
                "  linkStyle {index} stroke:{colour},color:{colour}"
            ));
        }
    }
    for style in styles {
        out.push_str(&style);
        out.push('\n');
    }
    out
}
