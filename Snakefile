# fashion-rembg: does removing the background of fashion photos help neural networks?
# Raw data → prepared stores → rembg masks → composites → training → tables, figures, report.
from snakemake.utils import min_version

from fashion_rembg.workflow_io import cancel_scheduler_timers

min_version("9.12")


# --configfile replaces the demo default instead of deep-merging into it (paper.yaml must not
# inherit demo-only keys); --config key=value alone still overrides single demo values.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/saliency.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/instance.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


# The workflow is done: its scheduler timers need not run out before the process exits.
onsuccess:
    cancel_scheduler_timers()


onerror:
    cancel_scheduler_timers()
