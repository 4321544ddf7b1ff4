"""Dockerfile reconstruction from history (legacy builder and BuildKit forms), parsing a
Dockerfile, and aligning its last stage with the image's steps."""

from __future__ import annotations

from minifier.xray.dockerfile import (
    align,
    history_steps,
    instruction_text,
    parse_dockerfile,
    reconstruct,
)

LEGACY = [
    {"created_by": "", "comment": "Imported from -"},
    {"created_by": "/bin/sh -c #(nop)  LABEL minify.sandbox=nginx", "empty_layer": True},
    {"created_by": "/bin/sh -c #(nop)  ARG DEBIAN_FRONTEND=noninteractive", "empty_layer": True},
    {"created_by": "|1 DEBIAN_FRONTEND=noninteractive /bin/sh -c apt-get update  && apt-get "
                   "install -y nginx  && rm -rf /var/lib/apt/lists/*"},
    {"created_by": "/bin/sh -c #(nop) COPY file:8ca2fe22 in /etc/nginx/nginx.conf "},
    {"created_by": "/bin/sh -c #(nop)  EXPOSE 80", "empty_layer": True},
    {"created_by": '/bin/sh -c #(nop)  CMD ["nginx" "-g" "daemon off;"]', "empty_layer": True},
]


def test_instructions_from_both_builders():
    assert instruction_text('/bin/sh -c #(nop)  ENTRYPOINT ["/bin/app" "--flag=\\"x\\""]') == \
        'ENTRYPOINT ["/bin/app", "--flag=\\"x\\""]'
    assert instruction_text("RUN /bin/sh -c pip install x # buildkit") == "RUN pip install x"
    assert instruction_text("COPY app.py /app/ # buildkit") == "COPY app.py /app/"
    assert instruction_text("WORKDIR /app") == "WORKDIR /app"
    assert instruction_text("EXPOSE map[8080/tcp:{}]") == "EXPOSE map[8080/tcp:{}]"
    assert instruction_text("/bin/sh -c #(nop)  EXPOSE map[8080/tcp:{} 9000/tcp:{}]") == \
        "EXPOSE 8080/tcp 9000/tcp"
    assert instruction_text("/bin/sh -c #(nop) ADD file:abc in / ") == "ADD file:abc /"


def test_reconstructed_dockerfile():
    steps = history_steps(LEGACY)
    assert [s.layer for s in steps] == [0, None, None, 1, 2, None, None]
    assert reconstruct(steps, "debian:bookworm", 1) == (
        "FROM debian:bookworm\n"
        "LABEL minify.sandbox=nginx\n"
        "ARG DEBIAN_FRONTEND=noninteractive\n"
        "RUN apt-get update \\\n    && apt-get install -y nginx \\\n"
        "    && rm -rf /var/lib/apt/lists/*\n"
        "COPY file:8ca2fe22 /etc/nginx/nginx.conf\n"
        "EXPOSE 80\n"
        'CMD ["nginx", "-g", "daemon off;"]\n')
    assert reconstruct(steps, "", 0).startswith("FROM scratch\n# layer 0: Imported from -\n")


DOCKERFILE = """# syntax=docker/dockerfile:1
FROM debian:bookworm AS build
RUN make

FROM debian:bookworm
LABEL minify.sandbox=nginx
ARG DEBIAN_FRONTEND=noninteractive
# install the server
RUN apt-get update \\
 && apt-get install -y nginx \\
    # a comment inside a continuation
 && rm -rf /var/lib/apt/lists/*
COPY --chown=0:0 nginx.conf /etc/nginx/nginx.conf
RUN <<EOF
echo heredoc
EOF
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
"""


def test_parse_dockerfile_lines_and_stages():
    ins = parse_dockerfile(DOCKERFILE)
    assert [(i.keyword, i.line, i.end_line, i.stage) for i in ins] == [
        ("FROM", 2, 2, 0), ("RUN", 3, 3, 0), ("FROM", 5, 5, 1), ("LABEL", 6, 6, 1),
        ("ARG", 7, 7, 1), ("RUN", 9, 12, 1), ("COPY", 13, 13, 1), ("RUN", 14, 16, 1),
        ("EXPOSE", 17, 17, 1), ("CMD", 18, 18, 1)]
    assert ins[5].args == ("apt-get update  && apt-get install -y nginx  "
                           "&& rm -rf /var/lib/apt/lists/*")


def test_align_maps_history_steps_to_the_last_stage():
    steps = [s for s in history_steps(LEGACY)[1:] if s.instruction]
    mapping = align(steps, parse_dockerfile(DOCKERFILE))
    assert {i: (ins.keyword, ins.line) for i, ins in mapping.items()} == {
        1: ("LABEL", 6), 2: ("ARG", 7), 3: ("RUN", 9), 4: ("COPY", 13), 5: ("EXPOSE", 17),
        6: ("CMD", 18)}
