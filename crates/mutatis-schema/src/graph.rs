//! The version graph: versions are nodes, lenses are edges, and a translation between two
//! versions follows the shortest path between them.
//!
//! An edge is declared in one direction (from the older version to the one its lens produces)
//! and walked both ways: forward along it, backward against it. The graph is generic over the
//! version key so that the same algorithm serves a schema set's integer versions and other
//! naming schemes (Cambria names versions with strings).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;

use mutatis_lens::Direction;
use thiserror::Error;

/// One declared edge: the lens (or whatever payload) that carries `from` to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge<V, E> {
    /// The version the lens starts from.
    pub from: V,
    /// The version the lens produces.
    pub to: V,
    /// What the edge carries (a lens, or a key to find one).
    pub payload: E,
}

/// One step of a path: an edge and the direction it is walked in.
#[derive(Debug, PartialEq)]
pub struct Step<'g, V, E> {
    /// The edge.
    pub edge: &'g Edge<V, E>,
    /// [`Direction::Forward`] walks from `edge.from` to `edge.to`.
    pub direction: Direction,
}

impl<V, E> Clone for Step<'_, V, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V, E> Copy for Step<'_, V, E> {}

/// What can go wrong building or walking a graph.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GraphError<V: fmt::Display> {
    /// A version that is not a node of the graph.
    #[error("unknown version {0}")]
    UnknownVersion(V),
    /// An edge from a version to itself.
    #[error("a lens from version {0} to itself")]
    SelfLoop(V),
    /// A second edge between two versions that are already joined (in either direction).
    ///
    /// Cambria keeps the first lens and silently ignores the second; mutatis refuses, because
    /// two lenses between the same versions would make a translation depend on which one won.
    #[error("a lens between {from} and {to} is already registered")]
    DuplicateEdge { from: V, to: V },
    /// The two versions are in parts of the graph that no edge joins.
    #[error("no lens path from version {from} to version {to}")]
    NoPath { from: V, to: V },
}

/// Versions and the lenses between them.
///
/// ```
/// use mutatis_schema::VersionGraph;
/// use mutatis_lens::Direction;
///
/// let mut g = VersionGraph::new();
/// for v in [1, 2, 3] {
///     g.add_node(v);
/// }
/// g.add_edge(1, 2, "1→2").unwrap();
/// g.add_edge(1, 3, "1→3").unwrap(); // 3 branches off 1
/// let path = g.path(&2, &3).unwrap();
/// let walked: Vec<_> = path.iter().map(|s| (s.edge.payload, s.direction)).collect();
/// assert_eq!(walked, [("1→2", Direction::Backward), ("1→3", Direction::Forward)]);
/// ```
#[derive(Debug, Clone)]
pub struct VersionGraph<V, E> {
    nodes: Vec<V>,
    index: HashMap<V, usize>,
    edges: Vec<Edge<V, E>>,
    /// Per node, the edges that touch it (edge index, direction that leaves this node), in
    /// the order they were added, so that among equally short paths the earliest declared wins
    /// and the result never depends on hashing.
    adjacent: Vec<Vec<(usize, Direction)>>,
}

impl<V, E> Default for VersionGraph<V, E> {
    fn default() -> Self {
        VersionGraph {
            nodes: Vec::new(),
            index: HashMap::new(),
            edges: Vec::new(),
            adjacent: Vec::new(),
        }
    }
}

impl<V, E> VersionGraph<V, E>
where
    V: Clone + Eq + Hash + fmt::Display,
{
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a version. Returns `false` if it was already there.
    pub fn add_node(&mut self, version: V) -> bool {
        if self.index.contains_key(&version) {
            return false;
        }
        self.index.insert(version.clone(), self.nodes.len());
        self.nodes.push(version);
        self.adjacent.push(Vec::new());
        true
    }

    /// Whether `version` is a node.
    pub fn contains(&self, version: &V) -> bool {
        self.index.contains_key(version)
    }

    /// The versions, in the order they were added.
    pub fn nodes(&self) -> &[V] {
        &self.nodes
    }

    /// The edges, in the order they were added.
    pub fn edges(&self) -> &[Edge<V, E>] {
        &self.edges
    }

    /// The edge that joins `a` and `b` (in either direction), if any.
    pub fn edge_between(&self, a: &V, b: &V) -> Option<&Edge<V, E>> {
        let ia = *self.index.get(a)?;
        self.adjacent[ia]
            .iter()
            .map(|&(e, _)| &self.edges[e])
            .find(|e| (&e.from == a && &e.to == b) || (&e.from == b && &e.to == a))
    }

    /// Declare a lens from `from` to `to`. Both versions must already be nodes.
    pub fn add_edge(&mut self, from: V, to: V, payload: E) -> Result<(), GraphError<V>> {
        let ifrom = self.node_index(&from)?;
        let ito = self.node_index(&to)?;
        if ifrom == ito {
            return Err(GraphError::SelfLoop(from));
        }
        if self.edge_between(&from, &to).is_some() {
            return Err(GraphError::DuplicateEdge { from, to });
        }
        let e = self.edges.len();
        self.edges.push(Edge { from, to, payload });
        self.adjacent[ifrom].push((e, Direction::Forward));
        self.adjacent[ito].push((e, Direction::Backward));
        Ok(())
    }

    /// The shortest path of edges from `from` to `to` (breadth-first). Empty when they are equal.
    pub fn path(&self, from: &V, to: &V) -> Result<Vec<Step<'_, V, E>>, GraphError<V>> {
        let start = self.node_index(from)?;
        let goal = self.node_index(to)?;
        if start == goal {
            return Ok(Vec::new());
        }
        // came_by[n] = the edge and direction that first reached node n.
        let mut came_by: Vec<Option<(usize, Direction)>> = vec![None; self.nodes.len()];
        let mut seen = vec![false; self.nodes.len()];
        seen[start] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            if n == goal {
                break;
            }
            for &(e, dir) in &self.adjacent[n] {
                let edge = &self.edges[e];
                let next_version = match dir {
                    Direction::Forward => &edge.to,
                    Direction::Backward => &edge.from,
                };
                let Some(&next) = self.index.get(next_version) else {
                    continue;
                };
                if !seen[next] {
                    seen[next] = true;
                    came_by[next] = Some((e, dir));
                    queue.push_back(next);
                }
            }
        }
        if !seen[goal] {
            return Err(GraphError::NoPath {
                from: from.clone(),
                to: to.clone(),
            });
        }
        let mut steps = Vec::new();
        let mut n = goal;
        while n != start {
            let Some((e, dir)) = came_by[n] else {
                // Every node but the start that BFS reached has an entry; a missing one would
                // mean the walk above is wrong, and an error beats a wrong path.
                return Err(GraphError::NoPath {
                    from: from.clone(),
                    to: to.clone(),
                });
            };
            let edge = &self.edges[e];
            steps.push(Step {
                edge,
                direction: dir,
            });
            let back = match dir {
                Direction::Forward => &edge.from,
                Direction::Backward => &edge.to,
            };
            n = self.node_index(back)?;
        }
        steps.reverse();
        Ok(steps)
    }

    fn node_index(&self, v: &V) -> Result<usize, GraphError<V>> {
        self.index
            .get(v)
            .copied()
            .ok_or_else(|| GraphError::UnknownVersion(v.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> VersionGraph<u32, &'static str> {
        let mut g = VersionGraph::new();
        for v in 1..=4 {
            g.add_node(v);
        }
        g.add_edge(1, 2, "a").unwrap();
        g.add_edge(2, 3, "b").unwrap();
        g.add_edge(3, 4, "c").unwrap();
        g
    }

    fn walk(
        g: &VersionGraph<u32, &'static str>,
        from: u32,
        to: u32,
    ) -> Vec<(&'static str, Direction)> {
        g.path(&from, &to)
            .unwrap()
            .iter()
            .map(|s| (s.edge.payload, s.direction))
            .collect()
    }

    #[test]
    fn paths_go_forward_and_backward() {
        let g = chain();
        assert_eq!(
            walk(&g, 1, 4),
            [
                ("a", Direction::Forward),
                ("b", Direction::Forward),
                ("c", Direction::Forward)
            ]
        );
        assert_eq!(
            walk(&g, 4, 2),
            [("c", Direction::Backward), ("b", Direction::Backward)]
        );
        assert!(walk(&g, 3, 3).is_empty());
    }

    #[test]
    fn shortest_path_wins() {
        let mut g = chain();
        g.add_node(5);
        g.add_edge(1, 5, "short").unwrap();
        g.add_edge(5, 4, "cut").unwrap();
        assert_eq!(
            walk(&g, 1, 4),
            [("short", Direction::Forward), ("cut", Direction::Forward)]
        );
    }

    #[test]
    fn bad_edges_are_refused() {
        let mut g = chain();
        assert_eq!(
            g.add_edge(2, 1, "again"),
            Err(GraphError::DuplicateEdge { from: 2, to: 1 })
        );
        assert_eq!(
            g.add_edge(1, 2, "again"),
            Err(GraphError::DuplicateEdge { from: 1, to: 2 })
        );
        assert_eq!(g.add_edge(2, 2, "self"), Err(GraphError::SelfLoop(2)));
        assert_eq!(g.add_edge(2, 9, "x"), Err(GraphError::UnknownVersion(9)));
        g.add_node(7);
        assert_eq!(g.path(&1, &7), Err(GraphError::NoPath { from: 1, to: 7 }));
        assert_eq!(g.path(&1, &8), Err(GraphError::UnknownVersion(8)));
    }
}
