//! QR codes as inline SVG, drawn on the server (no script, nothing fetched).

/// An SVG QR code of `data` labelled for assistive technology with `label`, or `None` when
/// the data is too long for a QR code (the page then shows the link alone).
pub fn svg(data: &str, label: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg")?;
    let label = askama::filters::escape(label, askama::filters::Html)
        .ok()?
        .to_string();
    Some(format!(
        "<svg role=\"img\" aria-label=\"{label}\" class=\"qr\"{}",
        &svg[start + 4..]
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_an_svg_with_a_label() {
        let s = super::svg("openid-credential-offer://?x=1", "A \"code\"").expect("svg");
        assert!(s.starts_with("<svg role=\"img\" aria-label=\"A &#34;code&#34;\""));
        assert!(s.ends_with("</svg>"));
        assert!(super::svg(&"x".repeat(10_000), "too long").is_none());
    }
}
