/// Which implementation's stored buffers the memory estimate describes.
public enum MemoryModel: String, CaseIterable, Codable, Sendable {
    /// The minimal set of tensors a backward pass needs (Korthikanti et al. 2022), at any
    /// precision, with every recomputation policy and parallel layout: what a framework that
    /// saves exactly those tensors holds (docs/estimates.md §3, "Activations").
    case textbook
    /// This project's own trainer (`Transformer.TransformerModel` with `Trainer`), byte for
    /// byte: Float32 everything, AdamW, no parallelism, preallocated llm.c-style buffers that
    /// include a few the textbook model does not (docs/estimates.md §3, "The project's own
    /// trainer"). Standard attention there never stores P (it is recomputed in the backward
    /// pass), so recomputation `none` and `selective` describe the same run; `full` does not exist.
    case projectTrainer = "trainer"
}
