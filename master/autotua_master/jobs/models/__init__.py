from .inputs import RunInputs
from .job import Job, JobState
from .result import Attachment, JobuildResult, LogFile
from .sidepend import Provision, ProvisionState, Requirement

__all__ = ["Attachment", "Job", "JobState", "JobuildResult", "LogFile", "Provision", "ProvisionState",
           "Requirement", "RunInputs"]
