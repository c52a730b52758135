from .inputs import RunInputs
from .job import Job
from .result import Attachment, JobuildResult, LogFile
from .run import Run
from .sidepend import Provision, Requirement
from .states import FINAL, JobState, ProvisionState, RunEnd

__all__ = ["FINAL", "Attachment", "Job", "JobState", "JobuildResult", "LogFile", "Provision", "ProvisionState",
           "Requirement", "Run", "RunEnd", "RunInputs"]
